//! Bearer-token authentication with roles, checked on every RPC of the job
//! and worker services (health and reflection stay open).
//!
//! Tokens are kept as SHA-256 digests and looked up by digest, so a lookup
//! takes the same path whatever the token's content.

use std::collections::HashMap;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use spotenc_proto::auth::{bearer, Role};
use spotenc_proto::Error;

/// The tokens a coordinator accepts. Empty means authentication is off.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    by_digest: HashMap<[u8; 32], (String, Role)>,
}

impl Tokens {
    pub fn add(&mut self, name: &str, token: &str, role: Role) {
        self.by_digest.insert(
            Sha256::digest(token.as_bytes()).into(),
            (name.to_string(), role),
        );
    }

    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }

    fn role_of(&self, token: &str) -> Option<&(String, Role)> {
        self.by_digest
            .get(&<[u8; 32]>::from(Sha256::digest(token.as_bytes())))
    }
}

/// Who made a call: the name of its token, or `anonymous` when
/// authentication is off. Set on every admitted request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(pub String);

impl Caller {
    pub const ANONYMOUS: &'static str = "anonymous";

    /// The caller of `req` ([`Caller::ANONYMOUS`] when none was set).
    pub fn of<T>(req: &tonic::Request<T>) -> String {
        req.extensions()
            .get::<Caller>()
            .map_or_else(|| Self::ANONYMOUS.to_string(), |c| c.0.clone())
    }
}

/// A tonic interceptor that admits only tokens with one of `allowed` roles
/// (admin is always allowed).
#[derive(Debug, Clone)]
pub struct RequireRole {
    tokens: Arc<Tokens>,
    allowed: Role,
}

impl RequireRole {
    pub fn new(tokens: Arc<Tokens>, allowed: Role) -> Self {
        RequireRole { tokens, allowed }
    }
}

impl tonic::service::Interceptor for RequireRole {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if self.tokens.is_empty() {
            req.extensions_mut()
                .insert(Caller(Caller::ANONYMOUS.to_string()));
            return Ok(req);
        }
        // Which of two headers counts differs between proxies and servers:
        // refuse the ambiguity rather than pick one.
        if req.metadata().get_all("authorization").iter().count() > 1 {
            return Err(
                Error::Unauthenticated("more than one authorization header".into()).into_status(),
            );
        }
        let Some(token) = bearer(&req) else {
            return Err(Error::Unauthenticated("missing bearer token".into()).into_status());
        };
        match self.tokens.role_of(token) {
            None => Err(Error::Unauthenticated("unknown token".into()).into_status()),
            Some((name, role)) if *role == self.allowed || *role == Role::Admin => {
                let caller = Caller(name.clone());
                req.extensions_mut().insert(caller);
                Ok(req)
            }
            Some((name, role)) => Err(Error::PermissionDenied(format!(
                "token {name:?} has role {role:?}, this service needs {:?}",
                self.allowed
            ))
            .into_status()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::service::Interceptor;

    fn call(tokens: &Arc<Tokens>, allowed: Role, token: Option<&str>) -> Result<(), tonic::Code> {
        let mut req = tonic::Request::new(());
        if let Some(t) = token {
            req.metadata_mut()
                .insert("authorization", format!("Bearer {t}").parse().unwrap());
        }
        RequireRole::new(tokens.clone(), allowed)
            .call(req)
            .map(|_| ())
            .map_err(|s| s.code())
    }

    #[test]
    fn roles_are_enforced() {
        let mut t = Tokens::default();
        t.add("ci", "client-secret", Role::Client);
        t.add("fleet", "worker-secret", Role::Worker);
        t.add("ops", "admin-secret", Role::Admin);
        let t = Arc::new(t);
        assert_eq!(call(&t, Role::Client, Some("client-secret")), Ok(()));
        assert_eq!(call(&t, Role::Client, Some("admin-secret")), Ok(()));
        assert_eq!(
            call(&t, Role::Client, Some("worker-secret")),
            Err(tonic::Code::PermissionDenied)
        );
        assert_eq!(
            call(&t, Role::Worker, Some("client-secret")),
            Err(tonic::Code::PermissionDenied)
        );
        assert_eq!(
            call(&t, Role::Worker, None),
            Err(tonic::Code::Unauthenticated)
        );
        assert_eq!(
            call(&t, Role::Worker, Some("guess")),
            Err(tonic::Code::Unauthenticated)
        );
    }

    #[test]
    fn no_tokens_means_open() {
        assert_eq!(
            call(&Arc::new(Tokens::default()), Role::Worker, None),
            Ok(())
        );
    }
}
