//! Who may call the admin API: a static bearer token (`admin.token` or `admin.token_file`), and/or
//! an access token (JWT) of the cluster's OpenID Connect provider (`admin.oidc`: signature against
//! the provider's JWKS, `iss`, `aud`, `exp`, and a role in a configured claim). Mutating endpoints
//! always need one, read-only ones with `admin.protect_reads`. Without any, the node only starts on
//! a loopback address (see `Config::validate`).

use std::time::{Duration, Instant};

use actix_web::{http::header, http::StatusCode, HttpRequest, HttpResponse};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::Value;
use tokio::sync::RwLock;

use crate::config::{AdminConfig, OidcConfig, Secret};

#[derive(Debug, Default)]
pub struct Auth {
    token: Option<Secret>,
    oidc: Option<Oidc>,
    protect_reads: bool,
}

/// What a request does, for deciding whether it needs a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// Why a request was refused: no valid credentials (401), or valid ones without the role (403).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Unauthenticated(String),
    Forbidden(String),
}

/// The provider's signing keys, fetched on first use and again for a key id not seen yet.
#[derive(Debug)]
struct Oidc {
    config: OidcConfig,
    http: reqwest::Client,
    keys: RwLock<Option<(Instant, JwkSet)>>,
}

/// A key id the cached set lacks refetches the set, at most this often.
const JWKS_REFETCH: Duration = Duration::from_secs(30);

impl Auth {
    /// The token from the configuration or its file (a mounted secret; surrounding whitespace is
    /// not part of it), and the OIDC provider.
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
        let oidc = match &c.oidc {
            Some(config) => Some(Oidc {
                config: config.clone(),
                http: reqwest::Client::builder()
                    .timeout(Duration::from_secs(10))
                    .build()
                    .map_err(|e| format!("admin.oidc: cannot build an HTTP client: {e}"))?,
                keys: RwLock::new(None),
            }),
            None => None,
        };
        Ok(Auth { token, oidc, protect_reads: c.protect_reads })
    }

    /// `Ok` when `req` may do `access`; otherwise why not (see [`refuse`]).
    pub async fn check(&self, req: &HttpRequest, access: Access) -> Result<(), Refusal> {
        if self.token.is_none() && self.oidc.is_none() {
            return Ok(());
        }
        if access == Access::Read && !self.protect_reads {
            return Ok(());
        }
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let Some(given) = given else {
            return Err(Refusal::Unauthenticated("this endpoint needs `Authorization: Bearer <token>`".into()));
        };
        if self.token.as_ref().is_some_and(|Secret(want)| same(given.as_bytes(), want.as_bytes())) {
            return Ok(());
        }
        match &self.oidc {
            Some(oidc) => oidc.verify(given).await,
            None => Err(Refusal::Unauthenticated("the bearer token is not valid".into())),
        }
    }
}

impl Oidc {
    /// Verifies a JWT: a key of the provider signed it, `iss`, `aud` and `exp` hold, and the role
    /// claim names the configured role.
    async fn verify(&self, jwt: &str) -> Result<(), Refusal> {
        let bad = |why: String| Refusal::Unauthenticated(format!("the bearer token is not valid: {why}"));
        let head = jsonwebtoken::decode_header(jwt).map_err(|e| bad(e.to_string()))?;
        // Only public-key signatures: a provider's key must never be usable as an HMAC secret.
        use jsonwebtoken::Algorithm::*;
        if !matches!(head.alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512 | ES256 | ES384 | EdDSA) {
            return Err(bad(format!("{:?} is not a public-key signature", head.alg)));
        }
        let kid = head.kid.clone().ok_or_else(|| bad("the token names no key (kid)".into()))?;
        let key = self.key(&kid).await.map_err(bad)?;
        let mut validation = Validation::new(head.alg);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let claims = jsonwebtoken::decode::<Value>(jwt, &key, &validation).map_err(|e| bad(e.to_string()))?.claims;
        let roles = self.config.role_claim.split('.').try_fold(&claims, |v, part| v.get(part));
        let has_role = match roles {
            Some(Value::Array(items)) => items.iter().any(|r| r.as_str() == Some(self.config.role.as_str())),
            Some(Value::String(s)) => s.split_whitespace().any(|r| r == self.config.role),
            _ => false,
        };
        if has_role {
            Ok(())
        } else {
            Err(Refusal::Forbidden(format!(
                "the token's {} does not include the role {}",
                self.config.role_claim, self.config.role
            )))
        }
    }

    /// The decoding key `kid`, from the cached set or a fresh one.
    async fn key(&self, kid: &str) -> Result<DecodingKey, String> {
        let find = |set: &JwkSet| set.find(kid).map(DecodingKey::from_jwk);
        {
            let cached = self.keys.read().await;
            if let Some((fetched, set)) = cached.as_ref() {
                match find(set) {
                    Some(key) => return key.map_err(|e| e.to_string()),
                    None if fetched.elapsed() < JWKS_REFETCH => return Err(format!("no signing key {kid:?}")),
                    None => {}
                }
            }
        }
        let url = &self.config.jwks_url;
        let text = async { self.http.get(url).send().await?.error_for_status()?.text().await }
            .await
            .map_err(|e| format!("cannot read the provider's keys at {url}: {e}"))?;
        let set: JwkSet = serde_json::from_str(&text).map_err(|e| format!("{url} is not a JWKS: {e}"))?;
        let key = find(&set);
        *self.keys.write().await = Some((Instant::now(), set));
        key.ok_or_else(|| format!("no signing key {kid:?}"))?.map_err(|e| e.to_string())
    }
}

/// The answer for a request [`Auth::check`] refused.
pub fn refuse(refusal: Refusal) -> HttpResponse {
    let (status, error, reason) = match refusal {
        Refusal::Unauthenticated(r) => (StatusCode::UNAUTHORIZED, "unauthorized", r),
        Refusal::Forbidden(r) => (StatusCode::FORBIDDEN, "forbidden", r),
    };
    HttpResponse::build(status)
        .insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"streamforge\""))
        .json(serde_json::json!({ "error": error, "reason": reason }))
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
        Auth { token: Some(Secret("s3cret-token-0123456789".into())), oidc: None, protect_reads }
    }

    #[tokio::test]
    async fn writes_need_the_token_and_reads_only_when_protected() {
        let none = TestRequest::default().to_http_request();
        let good =
            TestRequest::default().insert_header(("authorization", "Bearer s3cret-token-0123456789")).to_http_request();
        let bad =
            TestRequest::default().insert_header(("authorization", "Bearer s3cret-token-0123456780")).to_http_request();
        assert!(
            matches!(auth(false).check(&none, Access::Write).await, Err(Refusal::Unauthenticated(r)) if r.contains("Bearer"))
        );
        assert!(matches!(auth(false).check(&bad, Access::Write).await, Err(Refusal::Unauthenticated(_))));
        assert!(auth(false).check(&good, Access::Write).await.is_ok());
        assert!(auth(false).check(&none, Access::Read).await.is_ok());
        assert!(auth(true).check(&none, Access::Read).await.is_err());
        assert!(Auth::default().check(&none, Access::Write).await.is_ok(), "nothing configured: open (loopback only)");
        assert_eq!(refuse(Refusal::Forbidden("x".into())).status(), 403);
    }

    #[test]
    fn the_token_is_never_printed() {
        assert_eq!(format!("{:?}", auth(false)), "Auth { token: Some(***), oidc: None, protect_reads: false }");
    }
}
