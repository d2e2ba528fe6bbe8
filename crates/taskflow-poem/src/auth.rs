//! The bearer security scheme: it puts the Authorize button in Swagger UI and verifies every
//! `/api` call's token with the app's [`Verifier`].

use std::sync::Arc;

use poem::Request;
use poem::http::StatusCode;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;
use taskflow_auth::{Principal, Verifier};
use taskflow_core::model::Identity;

use crate::error::ApiError;

/// The role that may delete tasks and register workers. Compared case-sensitively.
pub const ADMIN_ROLE: &str = "admin";

/// A verified bearer token. Missing or non-Bearer credentials are 401 `Not authenticated`; a
/// bad token is 401 `Invalid token: <reason>`.
#[derive(SecurityScheme)]
#[oai(
    ty = "bearer",
    bearer_format = "JWT",
    checker = "verify_bearer",
    rename = "bearerAuth"
)]
pub struct BearerAuth(pub Principal);

impl BearerAuth {
    /// The identity the service acts for.
    pub fn identity(&self) -> Identity {
        Identity {
            id: self.0.id.clone(),
            admin: self.0.role == ADMIN_ROLE,
        }
    }
}

async fn verify_bearer(req: &Request, bearer: Bearer) -> poem::Result<Principal> {
    let verifier = req.data::<Arc<dyn Verifier>>().ok_or_else(|| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "No token verifier configured",
        )
    })?;
    Ok(verifier
        .verify(&bearer.token)
        .await
        .map_err(ApiError::from)?)
}
