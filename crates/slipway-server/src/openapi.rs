//! The OpenAPI document, generated from the handlers' annotations and the domain types.

use crate::routes::{
    deliveries, hooks, notifications, projects, pulls, runs, secrets, settings, tokens,
    validations, variables,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "Slipway API", description = "Goal in plain words to a validated, merged pull request."),
    paths(
        projects::list, projects::create, projects::show, projects::update, projects::delete,
        settings::show, settings::replace, settings::patch,
        secrets::list, secrets::put, secrets::delete, secrets::import,
        variables::list, variables::put, variables::delete, variables::import,
        tokens::list, tokens::create, tokens::revoke,
        validations::start, validations::list, validations::show, validations::logs,
        validations::retry, validations::cancel, validations::artifacts, validations::artifact,
        pulls::open, pulls::list, pulls::merge, pulls::close,
        runs::start, runs::list, runs::show, runs::continue_run, runs::confirm, runs::modify,
        runs::cancel,
        hooks::show, hooks::repair, deliveries::show, deliveries::replay,
        notifications::list, notifications::create, notifications::update,
        notifications::delete, notifications::test,
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
