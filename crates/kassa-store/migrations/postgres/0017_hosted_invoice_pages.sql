-- The hosted invoice page (issue 15): its URL, carrying an unguessable secret
-- (`<invoice>_secret_<random>`), made with the invoice.
ALTER TABLE invoices ADD COLUMN hosted_invoice_url TEXT;
