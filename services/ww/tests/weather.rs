//! `GET /api/weather` through the whole app on both backends (simulated provider): a signed-in
//! person gets the weather of the place's 0.1° cell, the same for every place in the cell, served
//! from the cache (Redis on the real backends) after the first read.

mod common;

use axum::http::StatusCode;
use common::{TestApp, unique_email};

on_both_backends!(the_weather_of_a_place_is_its_cells_and_is_cached);

async fn the_weather_of_a_place_is_its_cells_and_is_cached(app: TestApp) {
    let (_, token, _) = app.account(&unique_email("weather")).await;
    let first = app.call("GET", "/api/weather?lat=37.5665&lon=126.978", Some(&token), None).await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    let w = &first.body;
    assert_eq!(w["provider"], "simulated");
    assert_eq!(w["stale"], false);
    assert_eq!((w["location"]["lat"].as_f64(), w["location"]["lon"].as_f64()), (Some(37.6), Some(127.0)));
    for field in ["temperatureC", "feelsLikeC", "precipitationMm", "windSpeedKmh", "humidityPct", "conditionCode"] {
        assert!(w["current"][field].is_number(), "current.{field} in {w}");
    }
    assert!(w["current"]["condition"].is_string());
    assert!(w["airQuality"]["usAqi"].is_number());
    assert_eq!(w["hourly"].as_array().map(Vec::len), Some(12));
    assert_eq!(w["daily"].as_array().map(Vec::len), Some(3));
    assert!(first.headers.get("cache-control").is_some_and(|v| v.to_str().unwrap_or("").contains("max-age")));

    // Another place in the same cell: the same cached answer (same fetch time).
    let again = app.call("GET", "/api/weather?lat=37.59&lon=127.04", Some(&token), None).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body, first.body);
    let elsewhere = app.call("GET", "/api/weather?lat=-33.87&lon=151.21", Some(&token), None).await;
    assert_eq!(elsewhere.status, StatusCode::OK);
    assert_eq!(elsewhere.body["location"]["lat"].as_f64(), Some(-33.9));
}
