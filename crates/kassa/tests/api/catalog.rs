use crate::helpers::*;
use serde_json::json;

#[tokio::test]
async fn products_crud_and_cursor_pagination() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let p = app
            .post("/admin/products", As::Admin, json!({"name": format!("P{i}"), "metadata": {"sku": format!("S{i}")}}))
            .await
            .ok();
        assert_eq!(p["object"], "product");
        assert!(p["id"].as_str().unwrap().starts_with("prod_"));
        assert_eq!(p["inventory"], serde_json::Value::Null);
        ids.push(p["id"].as_str().unwrap().to_string());
    }
    // Lists are in id order: by creation time, and by the ids' random part within a
    // millisecond (this loop may create several products in one).
    ids.sort();
    // Newest first, two at a time.
    let page1 = app.get("/admin/products?limit=2", As::Admin).await.ok();
    let got: Vec<&str> = page1["data"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(got, vec![ids[4].as_str(), ids[3].as_str()]);
    assert_eq!(page1["has_more"], true);
    let page2 = app.get(&format!("/admin/products?limit=2&starting_after={}", ids[3]), As::Admin).await.ok();
    let got: Vec<&str> = page2["data"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(got, vec![ids[2].as_str(), ids[1].as_str()]);
    let page3 = app.get(&format!("/admin/products?limit=2&starting_after={}", ids[1]), As::Admin).await.ok();
    assert_eq!(page3["data"].as_array().unwrap().len(), 1);
    assert_eq!(page3["has_more"], false);
    let back = app.get(&format!("/admin/products?limit=2&ending_before={}", ids[1]), As::Admin).await.ok();
    let got: Vec<&str> = back["data"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(got, vec![ids[3].as_str(), ids[2].as_str()]);
    assert_eq!(back["has_more"], true);

    for bad in ["limit=0", "limit=101", "limit=abc", "limit=5&starting_after=a&ending_before=b", "color=red"] {
        let r = app.get(&format!("/admin/products?{bad}"), As::Admin).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
    }

    let updated = app
        .post(
            &format!("/admin/products/{}", ids[0]),
            As::Admin,
            json!({"name": "Renamed", "description": "Now with text", "active": false}),
        )
        .await
        .ok();
    assert_eq!(updated["name"], "Renamed");
    assert_eq!(updated["active"], false);
    assert_eq!(updated["metadata"]["sku"], "S0", "unchanged fields stay");
    let cleared = app.post(&format!("/admin/products/{}", ids[0]), As::Admin, json!({"description": null})).await.ok();
    assert_eq!(cleared["description"], serde_json::Value::Null);
    assert_eq!(cleared["name"], "Renamed");

    let r = app.get("/admin/products/prod_00000000000000000000000000", As::Admin).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.error_code(), "resource_missing");
    let r = app.get("/admin/products/garbage", As::Admin).await;
    assert_eq!(r.status, 404);

    let events = app.get(&format!("/admin/events?object={}", ids[0]), As::Admin).await.ok();
    let types: Vec<&str> = events["data"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, vec!["product.updated", "product.updated", "product.created"]);
    assert_eq!(events["data"][2]["data"]["object"]["name"], "P0");
}

#[tokio::test]
async fn store_shows_active_products_with_active_prices() {
    let app = spawn_app().await;
    let (shown, price) = app.product_with_price("Shown", 1500, Some(3)).await;
    let (hidden, _) = app.product_with_price("Hidden", 900, None).await;
    app.post(&format!("/admin/products/{hidden}"), As::Admin, json!({"active": false})).await.ok();
    let inactive_price = app
        .post(
            "/admin/prices",
            As::Admin,
            json!({"product": shown, "currency": "eur", "unit_amount": 1400, "active": false}),
        )
        .await
        .ok();

    let list = app.get("/store/products", As::Store).await.ok();
    let data = list["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["id"], shown.as_str());
    assert_eq!(data[0]["inventory"]["available"], 3);
    let prices = data[0]["prices"].as_array().unwrap();
    assert_eq!(prices.len(), 1);
    assert_eq!(prices[0]["id"], price.as_str());
    assert_eq!(prices[0]["unit_amount"], 1500);
    assert_ne!(prices[0]["id"], inactive_price["id"]);

    assert_eq!(app.get(&format!("/store/products/{hidden}"), As::Store).await.status, 404);
    let one = app.get(&format!("/store/products/{shown}"), As::Store).await.ok();
    assert_eq!(one["prices"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn prices_respect_currency_exponents_and_refuse_bad_amounts() {
    let app = spawn_app().await;
    let (product, _) = app.product_with_price("Thing", 100, None).await;
    for (currency, amount) in [("JPY", 500), ("kwd", 1250), ("usd", 0)] {
        let p = app
            .post("/admin/prices", As::Admin, json!({"product": product, "currency": currency, "unit_amount": amount}))
            .await
            .ok();
        assert_eq!(p["currency"], currency.to_lowercase());
        assert_eq!(p["unit_amount"], amount);
        assert_eq!(p["type"], "one_time");
    }
    let rec = app
        .post(
            "/admin/prices",
            As::Admin,
            json!({"product": product, "currency": "usd", "unit_amount": 900, "recurring": {"interval": "month"}}),
        )
        .await
        .ok();
    assert_eq!(rec["type"], "recurring");
    assert_eq!(rec["recurring"]["interval"], "month");
    assert_eq!(rec["recurring"]["interval_count"], 1);

    let before = app.get(&format!("/admin/prices?product={product}&limit=100"), As::Admin).await.ok()["data"]
        .as_array()
        .unwrap()
        .len();
    let cases = [
        (json!({"product": product, "currency": "xyz", "unit_amount": 1}), "currency"),
        (json!({"product": product, "currency": "usd", "unit_amount": -1}), "unit_amount"),
        (json!({"product": product, "currency": "usd", "unit_amount": 1_000_000_000_000i64}), "unit_amount"),
        (json!({"product": product, "currency": "usd", "unit_amount": 1e30}), "unit_amount"),
        (json!({"product": product, "currency": "usd", "unit_amount": 10.5}), "unit_amount"),
        (json!({"product": product, "currency": "usd", "unit_amount": "100"}), "unit_amount"),
        (json!({"product": product, "currency": "usd"}), "unit_amount"),
        (json!({"product": product, "currency": "usd", "unit_amount": 1, "amount": 1}), "amount"),
        (json!({"product": "prod_00000000000000000000000000", "currency": "usd", "unit_amount": 1}), "product"),
        (
            json!({"product": product, "currency": "usd", "unit_amount": 1, "recurring": {"interval": "fortnight"}}),
            "recurring.interval",
        ),
        (
            json!({"product": product, "currency": "usd", "unit_amount": 1, "recurring": {"interval": "month", "interval_count": 0}}),
            "recurring.interval_count",
        ),
    ];
    for (body, param) in cases {
        let r = app.post("/admin/prices", As::Admin, body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert_eq!(r.error_param(), param, "{body}: {}", r.text);
        assert_eq!(r.body["error"]["type"], "invalid_request_error");
    }
    let after = app.get(&format!("/admin/prices?product={product}&limit=100"), As::Admin).await.ok()["data"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(before, after, "refused requests created nothing");

    // Amounts are fixed; only active and nickname change.
    let r =
        app.post(&format!("/admin/prices/{}", rec["id"].as_str().unwrap()), As::Admin, json!({"unit_amount": 1})).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error_param(), "unit_amount");
    let p = app
        .post(
            &format!("/admin/prices/{}", rec["id"].as_str().unwrap()),
            As::Admin,
            json!({"active": false, "nickname": "Old"}),
        )
        .await
        .ok();
    assert_eq!(p["active"], false);
    assert_eq!(p["nickname"], "Old");
}

#[tokio::test]
async fn malformed_and_oversized_bodies_are_400_and_413() {
    let app = spawn_app_with(|s| s.server.body_limit = 4096).await;
    for body in ["{", "[1,2]", "null", "{\"name\": }", "\u{1}"] {
        let r = app.request(reqwest::Method::POST, "/admin/products", As::Admin, Some(body), None).await;
        assert_eq!(r.status, 400, "{body:?}: {}", r.text);
        assert_eq!(r.body["error"]["type"], "invalid_request_error");
    }
    let r = app.post("/admin/products", As::Admin, json!({"name": 5})).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error_param(), "name");
    let r = app.post("/admin/products", As::Admin, json!({"name": "   "})).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error_param(), "name");
    let r = app.post("/admin/products", As::Admin, json!({"name": "x", "inventory": {"quantity": -3}})).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error_param(), "inventory.quantity");
    let r = app.post("/admin/products", As::Admin, json!({"name": "x", "metadata": {"k": 1}})).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error_param(), "metadata.k");
    let big = json!({"name": "x".repeat(10_000)}).to_string();
    let r = app.request(reqwest::Method::POST, "/admin/products", As::Admin, Some(&big), None).await;
    assert_eq!(r.status, 413, "{}", r.text);
    assert_eq!(r.error_code(), "request_too_large");
    let list = app.get("/admin/products", As::Admin).await.ok();
    assert_eq!(list["data"].as_array().unwrap().len(), 0, "nothing was created");
}

#[tokio::test]
async fn exactly_one_pricing_model_is_the_default() {
    let app = spawn_app().await;
    let a = app.post("/admin/pricing-models", As::Admin, json!({"name": "Free and Pro"})).await.ok();
    assert_eq!(a["default"], true, "the first model is the default");
    let b = app.post("/admin/pricing-models", As::Admin, json!({"name": "Enterprise"})).await.ok();
    assert_eq!(b["default"], false);
    let c = app.post("/admin/pricing-models", As::Admin, json!({"name": "2027", "default": true})).await.ok();
    assert_eq!(c["default"], true);
    let list = app.get("/admin/pricing-models", As::Admin).await.ok();
    let defaults: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["default"] == true)
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(defaults, vec![c["id"].as_str().unwrap()]);

    let r = app
        .post(&format!("/admin/pricing-models/{}", c["id"].as_str().unwrap()), As::Admin, json!({"default": false}))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error_param(), "default");
    let a2 = app
        .post(&format!("/admin/pricing-models/{}", a["id"].as_str().unwrap()), As::Admin, json!({"default": true}))
        .await
        .ok();
    assert_eq!(a2["default"], true);
    assert_eq!(
        app.get(&format!("/admin/pricing-models/{}", c["id"].as_str().unwrap()), As::Admin).await.ok()["default"],
        false
    );

    // A default price must be a free recurring price of the same model.
    let model = a["id"].as_str().unwrap();
    let (product, paid) = app.product_with_price("Plan", 900, None).await;
    let free = app
        .post("/admin/prices", As::Admin, json!({"product": product, "currency": "usd", "unit_amount": 0, "recurring": {"interval": "month"}, "pricing_model": model}))
        .await
        .ok();
    let r = app.post(&format!("/admin/pricing-models/{model}"), As::Admin, json!({"default_price": paid})).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error_param(), "default_price");
    let m =
        app.post(&format!("/admin/pricing-models/{model}"), As::Admin, json!({"default_price": free["id"]})).await.ok();
    assert_eq!(m["default_price"], free["id"]);
}

#[tokio::test]
async fn regions_and_shipping_options() {
    let app = spawn_app().await;
    let eu = app
        .post("/admin/regions", As::Admin, json!({"name": "Germany", "currency": "EUR", "countries": ["de"], "tax_rates": [{"name": "VAT", "percentage": "19"}], "tax_inclusive": true}))
        .await
        .ok();
    assert_eq!(eu["currency"], "eur");
    assert_eq!(eu["countries"], json!(["DE"]));
    assert_eq!(eu["tax_rates"][0]["percentage"], "19");
    assert_eq!(eu["tax_inclusive"], true);
    let us = app
        .post(
            "/admin/regions",
            As::Admin,
            json!({"name": "NYC", "currency": "usd", "tax_rates": [{"name": "Sales tax", "percentage": 8.875}]}),
        )
        .await
        .ok();
    assert_eq!(us["tax_rates"][0]["percentage"], "8.875");
    assert_eq!(us["tax_inclusive"], false);

    for (body, param) in [
        (
            json!({"name": "X", "currency": "eur", "tax_rates": [{"name": "VAT", "percentage": "101"}]}),
            "tax_rates[0].percentage",
        ),
        (
            json!({"name": "X", "currency": "eur", "tax_rates": [{"name": "VAT", "percentage": "1.23456"}]}),
            "tax_rates[0].percentage",
        ),
        (json!({"name": "X", "currency": "eur", "countries": ["Germany"]}), "countries[0]"),
        (json!({"name": "X", "currency": "zzz"}), "currency"),
    ] {
        let r = app.post("/admin/regions", As::Admin, body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert_eq!(r.error_param(), param, "{body}: {}", r.text);
    }

    let ship = app
        .post("/admin/shipping-options", As::Admin, json!({"name": "DHL", "region": eu["id"], "amount": 499}))
        .await
        .ok();
    assert_eq!(ship["currency"], "eur");
    assert_eq!(ship["amount"], 499);
    let r = app
        .post(
            "/admin/shipping-options",
            As::Admin,
            json!({"name": "DHL", "region": "reg_00000000000000000000000000", "amount": 1}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error_param(), "region");
    let off = app
        .post(&format!("/admin/shipping-options/{}", ship["id"].as_str().unwrap()), As::Admin, json!({"active": false}))
        .await
        .ok();
    assert_eq!(off["active"], false);
    app.post("/admin/shipping-options", As::Admin, json!({"name": "UPS", "region": us["id"], "amount": 900}))
        .await
        .ok();
    let store =
        app.get(&format!("/store/shipping-options?region={}", eu["id"].as_str().unwrap()), As::Store).await.ok();
    assert_eq!(store["data"].as_array().unwrap().len(), 0, "inactive options are hidden");
    let regions = app.get("/store/regions", As::Store).await.ok();
    assert_eq!(regions["data"].as_array().unwrap().len(), 2);
}
