//! Who is calling the registrar API: a bearer API token and its role.
//! Missing or unknown token: 401; a role that may not do this: 403.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;

use super::error::ApiError;
use super::SharedState;
use crate::services::api_tokens::{self, ApiRole};

#[derive(Debug, Clone)]
pub struct Caller {
    pub token_id: String,
    pub role: ApiRole,
}

impl Caller {
    /// The actor recorded in event metadata.
    pub fn actor(&self) -> String {
        format!("token:{}", self.token_id)
    }

    /// Who, from where, in which request and when: what a command records.
    pub fn meta(&self, source: gradebook_domain::Source) -> gradebook_domain::CommandMeta {
        gradebook_domain::CommandMeta::new(
            self.actor(),
            source,
            super::error::current_request_id(),
            chrono::Utc::now(),
        )
    }

    /// Refuses with 403 unless the caller holds one of `roles`.
    pub fn require(&self, roles: &[ApiRole]) -> Result<(), ApiError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "this needs a token with role {}; yours is {}",
                    names.join(" or "),
                    self.role.as_str()
                ),
            ))
        }
    }

    /// Every role reads.
    pub fn require_read(&self) -> Result<(), ApiError> {
        Ok(())
    }
}

/// Callers whose role is checked as the request's head is read, before its
/// body: a token without the role is refused with 403 whatever it sent.
macro_rules! role_caller {
    ($(#[$doc:meta])* $name:ident: $($role:ident)|+) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name(pub Caller);

        impl $name {
            /// The caller, if it holds the role.
            pub fn check(caller: Caller) -> Result<Self, ApiError> {
                caller.require(&[$(ApiRole::$role),+])?;
                Ok($name(caller))
            }
        }

        impl FromRequestParts<SharedState> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(
                parts: &mut Parts,
                state: &SharedState,
            ) -> Result<Self, Self::Rejection> {
                Self::check(Caller::from_request_parts(parts, state).await?)
            }
        }
    };
}

role_caller!(
    /// A caller with the `sis` role.
    SisCaller: Sis
);
role_caller!(
    /// A caller with the `registrar` role.
    RegistrarCaller: Registrar
);
role_caller!(
    /// A caller with the `sis` or the `registrar` role.
    SisOrRegistrarCaller: Sis | Registrar
);

pub fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

impl FromRequestParts<SharedState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &SharedState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| unauthorized("send an API token as Authorization: Bearer <token>"))?;
        let bearer = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| unauthorized("send an API token as Authorization: Bearer <token>"))?;
        match api_tokens::verify(&state.engine.db, bearer.trim()).await {
            Ok(Some(t)) => Ok(Caller {
                token_id: t.token_id,
                role: t.role,
            }),
            Ok(None) => Err(unauthorized("the API token is unknown or revoked")),
            Err(e) => Err(crate::engine::EngineError::from(e).into()),
        }
    }
}
