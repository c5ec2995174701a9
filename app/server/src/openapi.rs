//! The OpenAPI 3.1 document, generated from the route annotations.

use std::sync::OnceLock;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::{ErrorBody, ErrorDetail};
use crate::mood_worker::MoodView;
use crate::routes::{entries, matches, mood, ops, users};

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "MetaChat server",
        description = "Diary entries with mood analysis and matching. Errors are `{\"error\": {\"code\", \"message\", ...}}` with a stable code.",
        version = "1.0.0",
    ),
    paths(
        ops::healthz, ops::readyz, ops::openapi,
        users::register, users::login, users::refresh, users::logout, users::me, users::erase,
        entries::create, entries::list, entries::get_one, entries::edit, entries::delete_one,
        mood::timeline, matches::matches,
    ),
    components(schemas(
        ErrorBody, ErrorDetail, MoodView,
        ops::Health, ops::Readiness,
        users::Register, users::Registered, users::Login, users::Refresh, users::Session, users::Me, users::Position,
        entries::CreateEntry, entries::EditEntry, entries::Created, entries::Edited,
        entries::Entry, entries::EntryRead, entries::EntryPage,
        mood::Day, mood::Timeline,
        matches::Explanation, matches::Match, matches::Matches,
    )),
    modifiers(&Bearer),
    tags(
        (name = "ops", description = "Health, readiness and this document (Prometheus metrics are on the separate metrics address, --metrics-addr)"),
        (name = "users", description = "Registration and one's own account"),
        (name = "sessions", description = "Bearer tokens"),
        (name = "entries", description = "One's own diary entries"),
        (name = "mood", description = "One's mood timeline"),
        (name = "matches", description = "People with a similar mood and themes"),
    )
)]
pub(crate) struct ApiDoc;

/// Adds the bearer security scheme.
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A token from POST /v1/sessions"))
                    .build(),
            ),
        );
    }
}

/// The document as JSON, rendered once.
pub(crate) fn document_json() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        ApiDoc::openapi()
            .to_json()
            .unwrap_or_else(|_| "{}".to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented_with_errors_and_bearer() {
        let doc: serde_json::Value =
            serde_json::from_str(document_json()).expect("the document is JSON");
        assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
        for path in [
            "/healthz",
            "/readyz",
            "/openapi.json",
            "/v1/users",
            "/v1/sessions",
            "/v1/sessions/current",
            "/v1/me",
            "/v1/entries",
            "/v1/entries/{entry_id}",
            "/v1/mood/timeline",
            "/v1/matches",
        ] {
            assert!(doc["paths"].get(path).is_some(), "{path} undocumented");
        }
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        assert!(
            doc["paths"].get("/metrics").is_none(),
            "/metrics is not on the public address"
        );
        assert!(doc["components"]["schemas"].get("ErrorBody").is_some());
        let login = &doc["paths"]["/v1/sessions"]["post"]["responses"];
        for status in ["408", "429", "503"] {
            assert!(login.get(status).is_some(), "login lacks {status}");
        }
        assert!(
            login["429"]["headers"].get("Retry-After").is_some(),
            "429 documents Retry-After"
        );
        let register = &doc["paths"]["/v1/users"]["post"]["responses"];
        assert!(register.get("429").is_some(), "register lacks 429");
        let put = &doc["paths"]["/v1/entries/{entry_id}"]["put"]["responses"];
        for status in [
            "200", "400", "401", "404", "409", "410", "413", "415", "422", "503",
        ] {
            assert!(put.get(status).is_some(), "PUT entry lacks {status}");
        }
    }
}
