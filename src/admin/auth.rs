//! Who may call the admin API: a static bearer token (`admin.token` or `admin.token_file`) for the
//! mutating endpoints, and for the read-only ones too with `admin.protect_reads`. Without a token
//! the node only starts on a loopback address (see `Config::validate`).

use actix_web::{http::header, HttpRequest, HttpResponse};

use crate::config::{AdminConfig, Secret};

#[derive(Debug, Default)]
pub struct Auth {
    token: Option<Secret>,
    protect_reads: bool,
}

/// What a request does, for deciding whether it needs the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

impl Auth {
    /// The token from the configuration or its file (a mounted secret; surrounding whitespace is
    /// not part of it).
    pub fn from_config(c: &AdminConfig) -> Result<Auth, String> {
        let token = match (&c.token, &c.token_file) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(path)) => {
                let text =
                    std::fs::read_to_string(path).map_err(|e| format!("cannot read admin.token_file {path}: {e}"))?;
                let t = text.trim().to_owned();
                if t.len() < 16 {
                    return Err(format!("admin.token_file {path}: the token must have at least 16 characters"));
                }
                Some(Secret(t))
            }
            (None, None) => None,
        };
        Ok(Auth { token, protect_reads: c.protect_reads })
    }

    /// `Ok` when `req` may do `access`; otherwise why not (see [`refuse`]).
    pub fn check(&self, req: &HttpRequest, access: Access) -> Result<(), &'static str> {
        let Some(Secret(want)) = &self.token else { return Ok(()) };
        if access == Access::Read && !self.protect_reads {
            return Ok(());
        }
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        match given {
            None => Err("this endpoint needs `Authorization: Bearer <token>` (admin.token)"),
            Some(t) if same(t.as_bytes(), want.as_bytes()) => Ok(()),
            Some(_) => Err("the bearer token is not valid"),
        }
    }
}

/// The 401 for a request [`Auth::check`] refused.
pub fn refuse(reason: &str) -> HttpResponse {
    HttpResponse::Unauthorized()
        .insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"streamforge\""))
        .json(serde_json::json!({ "error": "unauthorized", "reason": reason }))
}

/// Compares in time that depends on the length only, not on where the bytes differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn auth(protect_reads: bool) -> Auth {
        Auth { token: Some(Secret("s3cret-token-0123456789".into())), protect_reads }
    }

    #[test]
    fn writes_need_the_token_and_reads_only_when_protected() {
        let none = TestRequest::default().to_http_request();
        let good =
            TestRequest::default().insert_header(("authorization", "Bearer s3cret-token-0123456789")).to_http_request();
        let bad =
            TestRequest::default().insert_header(("authorization", "Bearer s3cret-token-0123456780")).to_http_request();
        assert!(auth(false).check(&none, Access::Write).unwrap_err().contains("Authorization: Bearer"));
        assert_eq!(auth(false).check(&bad, Access::Write).unwrap_err(), "the bearer token is not valid");
        assert_eq!(refuse("x").status(), 401);
        assert!(auth(false).check(&good, Access::Write).is_ok());
        assert!(auth(false).check(&none, Access::Read).is_ok());
        assert!(auth(true).check(&none, Access::Read).is_err());
        assert!(Auth::default().check(&none, Access::Write).is_ok(), "no token configured: open (loopback only)");
    }

    #[test]
    fn the_token_is_never_printed() {
        assert_eq!(format!("{:?}", auth(false)), "Auth { token: Some(***), protect_reads: false }");
    }
}
