//! Bearer-token check for the control plane: every call must carry
//! `authorization: Bearer <token>` when a token is configured. The compare
//! takes the same time whatever the token's content.

use std::sync::Arc;

use subtle::ConstantTimeEq;
use tonic::{Request, Status, service::Interceptor};

/// A tonic interceptor that checks the bearer token.
#[derive(Clone, Default)]
pub struct BearerAuth {
    /// The expected token; `None` lets every call through.
    token: Option<Arc<[u8]>>,
}

impl std::fmt::Debug for BearerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerAuth")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl BearerAuth {
    /// Requires `token` (trimmed) when it is `Some` and not empty.
    pub fn new(token: Option<&str>) -> Self {
        let token = token
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| Arc::from(t.as_bytes()));
        Self { token }
    }

    /// Whether a token is required.
    pub fn is_required(&self) -> bool {
        self.token.is_some()
    }

    /// Checks an `authorization` header's value.
    ///
    /// # Errors
    /// Why it is refused: none given, or the wrong token.
    pub fn check(&self, header: Option<&str>) -> Result<(), &'static str> {
        let Some(expected) = &self.token else {
            return Ok(());
        };
        let given = header
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or("control call needs authorization: Bearer <token>")?;
        if bool::from(given.as_bytes().ct_eq(expected)) {
            Ok(())
        } else {
            Err("wrong control token")
        }
    }
}

impl Interceptor for BearerAuth {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        self.check(header).map_err(Status::unauthenticated)?;
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    fn with(header: Option<&str>) -> Request<()> {
        let mut r = Request::new(());
        if let Some(h) = header {
            r.metadata_mut().insert("authorization", h.parse().unwrap());
        }
        r
    }

    #[test]
    fn tokens_are_checked() {
        let mut auth = BearerAuth::new(Some("s3cret\n"));
        assert!(auth.call(with(Some("Bearer s3cret"))).is_ok());
        for bad in [
            None,
            Some("Bearer nope"),
            Some("s3cret"),
            Some("Bearer s3cret2"),
        ] {
            let status = auth.call(with(bad)).unwrap_err();
            assert_eq!(status.code(), Code::Unauthenticated, "{bad:?}");
        }
        let mut open = BearerAuth::new(None);
        assert!(open.call(with(None)).is_ok());
        assert!(!BearerAuth::new(Some("  ")).is_required());
    }
}
