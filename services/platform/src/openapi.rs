//! The OpenAPI document served at `/openapi.json`: each service describes its routes
//! with utoipa; this module merges them and adds what every route shares — the bearer
//! scheme and the problem+json answers the platform itself can give.

use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, OpenApi as Doc, Ref, RefOr, Response, ResponseBuilder};

use crate::error::{PROBLEM_JSON, Problem};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "WeatherWise API",
        description = "Weather, missions, coupons and chat. Errors are RFC 9457 problem+json with a stable `code`."
    ),
    components(schemas(Problem))
)]
struct PlatformDoc;

pub const BEARER: &str = "bearer";

/// Merges the services' documents into one, with shared components and answers.
pub fn document(parts: impl IntoIterator<Item = Doc>) -> Doc {
    let mut doc = PlatformDoc::openapi();
    for part in parts {
        // Two services naming different schemas alike would leave one of them describing the
        // other's answers: a programming error every test that builds an app trips over.
        if let (Some(have), Some(add)) = (doc.components.as_ref(), part.components.as_ref()) {
            for (name, schema) in &add.schemas {
                if let Some(existing) = have.schemas.get(name) {
                    assert!(
                        existing == schema,
                        "two services define different OpenAPI schemas named `{name}`: rename one (#[schema(as = …)])"
                    );
                }
            }
        }
        doc.merge(part);
    }
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
    );
    for item in doc.paths.paths.values_mut() {
        let operations =
            [item.get.as_mut(), item.post.as_mut(), item.put.as_mut(), item.patch.as_mut(), item.delete.as_mut()];
        for op in operations.into_iter().flatten() {
            let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
            let has_body = op.request_body.is_some();
            let mut shared = vec![
                ("400", "The request is malformed (query, path or JSON syntax)."),
                ("429", "Too many requests; retry after `Retry-After` seconds."),
                ("503", "Temporarily unable to answer (timeout, draining or a backend down)."),
            ];
            if has_body {
                shared.extend([
                    ("413", "The body is larger than the endpoint accepts."),
                    ("415", "The body is not `application/json`."),
                    ("422", "The body is JSON of the wrong shape or has out-of-range values."),
                ]);
            }
            if secured {
                shared
                    .push(("401", "The access token is missing, malformed, forged, expired or of a revoked session."));
            }
            for (status, description) in shared {
                op.responses.responses.entry(status.to_owned()).or_insert_with(|| problem(description));
            }
        }
    }
    doc
}

/// A response whose body is a problem document.
pub fn problem(description: &str) -> RefOr<Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(PROBLEM_JSON, Content::new(Some(Ref::from_schema_name("Problem"))))
            .build(),
    )
}
