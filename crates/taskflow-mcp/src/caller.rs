//! [`Caller`]: who a tool call acts for.

use taskflow_auth::{DEFAULT_ROLE, Principal};
use taskflow_core::model::Identity;

/// Who a tool call acts for: the [`Identity`] the operations run as, and the [`Principal`] it
/// came from (what `whoami` reports besides the actor type).
///
/// Over HTTP the server's bearer-token check builds one per request from the verified token and
/// puts it in the request's extensions, where [`crate::TaskflowMcp`] finds it; over stdio it is
/// fixed for the life of the server ([`crate::TaskflowMcp::with_caller`]). Whether the caller
/// is an agent is never theirs to say: the worker registry decides, as for every front-end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The identity the operations run as (the actor of every audit row).
    pub identity: Identity,
    /// The verified claims behind it: `id` (the token's `sub`), `email`, `role`.
    pub principal: Principal,
}

impl Caller {
    /// A caller with this identity, verified as `principal`. The identity is derived by the
    /// authenticator (the HTTP crate decides which role makes an admin), so that rule lives in
    /// one place.
    pub fn new(identity: Identity, principal: Principal) -> Self {
        Caller {
            identity,
            principal,
        }
    }

    /// A local caller named `id`, with no token: the actor of a stdio server over a local
    /// database (`TASKFLOW_ACTOR`). Not an admin; role `user`, no email.
    pub fn local(id: impl Into<String>) -> Self {
        let id = id.into();
        Caller {
            identity: Identity::user(id.clone()),
            principal: Principal {
                id,
                email: None,
                role: DEFAULT_ROLE.to_owned(),
            },
        }
    }
}
