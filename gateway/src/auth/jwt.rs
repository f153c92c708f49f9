//! HS256 JSON Web Tokens: the signing secret, the claims, issuing and checking.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::Rng;
use rand::distr::Alphanumeric;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Scope, TenantId};
use crate::error::{AppError, GatewayError};

/// Shortest secret accepted.
pub const MIN_SECRET_CHARS: usize = 32;

/// The environment variable the secret is read from.
pub const SECRET_ENV: &str = "PULSE_JWT_SECRET";

/// Seconds of clock skew tolerated when checking `exp`.
const LEEWAY_SECS: u64 = 5;

/// The HMAC secret tokens are signed with (never printed).
#[derive(Clone)]
pub struct JwtSecret(Arc<str>);

impl std::fmt::Debug for JwtSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtSecret(..)")
    }
}

impl JwtSecret {
    /// A secret of at least [`MIN_SECRET_CHARS`] characters.
    pub fn new(secret: impl Into<String>) -> Result<Self, GatewayError> {
        let secret = secret.into();
        if secret.chars().count() < MIN_SECRET_CHARS {
            return Err(GatewayError::JwtSecret(format!(
                "{SECRET_ENV} must be at least {MIN_SECRET_CHARS} characters long (got {}); \
                 generate one with `openssl rand -base64 48`",
                secret.chars().count()
            )));
        }
        Ok(Self(secret.into()))
    }

    /// A random secret that lives as long as the process (demo mode).
    pub fn ephemeral() -> Self {
        let secret: String = rand::rng()
            .sample_iter(&Alphanumeric)
            .take(48)
            .map(char::from)
            .collect();
        Self(secret.into())
    }

    /// The secret from `lookup(PULSE_JWT_SECRET)`; when it is unset and `demo` is on,
    /// an ephemeral one (and a warning saying tokens will not survive a restart).
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>, demo: bool) -> Result<Self, GatewayError> {
        match lookup(SECRET_ENV) {
            Some(secret) => Self::new(secret),
            None if demo => {
                tracing::warn!(
                    "{SECRET_ENV} is not set: demo mode signs tokens with an ephemeral secret; \
                     they stop working when this process exits"
                );
                Ok(Self::ephemeral())
            }
            None => Err(GatewayError::JwtSecret(format!(
                "{SECRET_ENV} is not set: the gateway refuses to start without a signing secret of at least \
                 {MIN_SECRET_CHARS} characters (or run it in demo mode for an ephemeral one)"
            ))),
        }
    }

    fn bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// Access tokens authorise requests; refresh tokens only buy new pairs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// Sent as `Authorization: Bearer`.
    Access,
    /// Sent to `POST /api/v1/auth/refresh`.
    Refresh,
}

impl TokenKind {
    /// The kind as said in a sentence, with its article.
    pub fn with_article(self) -> &'static str {
        match self {
            Self::Access => "an access token",
            Self::Refresh => "a refresh token",
        }
    }
}

/// The claims of every token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The tenant id.
    pub sub: String,
    /// Granted scopes.
    pub scopes: Vec<Scope>,
    /// Access or refresh.
    pub typ: TokenKind,
    /// The user name, for tokens issued at login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usr: Option<String>,
    /// The rate-limit plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Expires at (Unix seconds).
    pub exp: i64,
    /// Unique token id.
    pub jti: String,
}

impl Claims {
    /// Claims for `tenant` valid for `ttl` from now.
    pub fn new(tenant: &str, scopes: &[Scope], kind: TokenKind, ttl: Duration) -> Self {
        let now = crate::store::now_millis() / 1000;
        Self {
            sub: tenant.to_owned(),
            scopes: scopes.to_vec(),
            typ: kind,
            usr: None,
            plan: None,
            iat: now,
            exp: now.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)),
            jti: Uuid::new_v4().simple().to_string(),
        }
    }
}

/// Most tokens [`VerifiedTokens`] remembers; it forgets them all when full.
const VERIFIED_CAPACITY: usize = 4_096;

/// Tokens whose signature and claims were checked, by their whole text. A
/// client sends the same token with every request, and checking the HMAC and
/// decoding the claims cost more than the rest of a KV read; a byte-identical
/// token is the same signed claims, so only the time-dependent check (`exp`)
/// has to be made again.
#[derive(Default)]
struct VerifiedTokens(Mutex<HashMap<Box<str>, Claims>>);

impl VerifiedTokens {
    /// The claims of `token` if it was verified and has not expired by `now` (Unix seconds).
    fn get(&self, token: &str, now: i64) -> Option<Claims> {
        let mut tokens = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let claims = tokens.get(token)?;
        if claims.exp.saturating_add(LEEWAY_SECS as i64) < now {
            tokens.remove(token);
            return None;
        }
        Some(claims.clone())
    }

    fn insert(&self, token: &str, claims: &Claims) {
        let mut tokens = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if tokens.len() >= VERIFIED_CAPACITY {
            tokens.clear();
        }
        tokens.insert(token.into(), claims.clone());
    }
}

/// Signing and verifying keys derived from one secret.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    verified: VerifiedTokens,
}

impl JwtKeys {
    /// Keys for `secret`, HS256 only.
    pub fn new(secret: &JwtSecret) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret.bytes()),
            decoding: DecodingKey::from_secret(secret.bytes()),
            validation,
            verified: VerifiedTokens::default(),
        }
    }

    /// The signed token for `claims`.
    pub fn sign(&self, claims: &Claims) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .expect("HS256 signs any serialisable claims")
    }

    /// The claims of `token` if it is well signed, unexpired, of `kind`, and names a UUID tenant.
    pub fn verify(&self, token: &str, kind: TokenKind) -> Result<Claims, AppError> {
        let claims = match self.verified.get(token, crate::store::now_millis() / 1000) {
            Some(claims) => claims,
            None => {
                let claims = self.decode(token)?;
                self.verified.insert(token, &claims);
                claims
            }
        };
        if claims.typ != kind {
            return Err(AppError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "invalid_token",
                format!("expected {}, not {}", kind.with_article(), claims.typ.with_article()),
            ));
        }
        if !TenantId::is_valid(&claims.sub) {
            return Err(AppError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "invalid_token",
                format!("the token's subject is not a tenant id ({})", TenantId::RULE),
            ));
        }
        Ok(claims)
    }

    /// Checks the signature and expiry of `token` and decodes its claims.
    fn decode(&self, token: &str) -> Result<Claims, AppError> {
        Ok(jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|error| match error.kind() {
                ErrorKind::ExpiredSignature => AppError::new(
                    axum::http::StatusCode::UNAUTHORIZED,
                    "token_expired",
                    "the token has expired",
                ),
                ErrorKind::InvalidSignature => AppError::new(
                    axum::http::StatusCode::UNAUTHORIZED,
                    "invalid_token",
                    "the token signature is invalid",
                ),
                _ => AppError::new(
                    axum::http::StatusCode::UNAUTHORIZED,
                    "invalid_token",
                    "the token is malformed",
                ),
            })?
            .claims)
    }
}

/// An access token for `tenant` with `scopes`, valid for `ttl` (what `pulse token` prints).
pub fn issue_token(secret: &JwtSecret, tenant: TenantId, scopes: &[Scope], ttl: Duration) -> String {
    let claims = Claims::new(tenant.as_str(), scopes, TokenKind::Access, ttl);
    JwtKeys::new(secret).sign(&claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> JwtSecret {
        JwtSecret::new("0123456789abcdef0123456789abcdef").unwrap()
    }

    #[test]
    fn short_or_missing_secrets_are_refused_with_a_clear_message() {
        let error = JwtSecret::new("too short").unwrap_err().to_string();
        assert!(error.contains("at least 32 characters"), "{error}");
        let error = JwtSecret::from_env(|_| None, false).unwrap_err().to_string();
        assert!(error.contains("PULSE_JWT_SECRET is not set"), "{error}");
        assert!(JwtSecret::from_env(|_| None, true).is_ok());
        assert!(JwtSecret::from_env(|_| Some("x".repeat(32)), false).is_ok());
        assert_eq!(format!("{:?}", secret()), "JwtSecret(..)");
    }

    #[test]
    fn issued_tokens_verify_only_with_their_secret_and_kind() {
        let tenant = Uuid::new_v4();
        let token = issue_token(
            &secret(),
            tenant.to_string().parse().unwrap(),
            &[Scope::Read],
            Duration::from_secs(60),
        );
        let claims = JwtKeys::new(&secret()).verify(&token, TokenKind::Access).unwrap();
        assert_eq!(claims.sub, tenant.to_string());
        assert_eq!(claims.scopes, vec![Scope::Read]);
        let other = JwtSecret::new("another-secret-another-secret-123").unwrap();
        assert_eq!(
            JwtKeys::new(&other)
                .verify(&token, TokenKind::Access)
                .unwrap_err()
                .code(),
            "invalid_token"
        );
        let wrong_kind = JwtKeys::new(&secret()).verify(&token, TokenKind::Refresh).unwrap_err();
        assert_eq!(wrong_kind.code(), "invalid_token");
        assert_eq!(
            wrong_kind.to_string(),
            "401 invalid_token: expected a refresh token, not an access token"
        );
    }

    #[test]
    fn expired_tokens_are_reported_as_such() {
        let keys = JwtKeys::new(&secret());
        let mut claims = Claims::new(
            &Uuid::new_v4().to_string(),
            &[Scope::Read],
            TokenKind::Access,
            Duration::ZERO,
        );
        claims.exp -= 120;
        let error = keys.verify(&keys.sign(&claims), TokenKind::Access).unwrap_err();
        assert_eq!(error.code(), "token_expired");
    }

    #[test]
    fn a_remembered_token_still_expires_and_keeps_its_kind() {
        let keys = JwtKeys::new(&secret());
        let claims = Claims::new("acme", &[Scope::Read], TokenKind::Access, Duration::from_secs(60));
        let token = keys.sign(&claims);
        assert_eq!(keys.verify(&token, TokenKind::Access).unwrap(), claims);
        assert_eq!(
            keys.verify(&token, TokenKind::Access).unwrap(),
            claims,
            "served from memory"
        );
        assert!(
            keys.verify(&token, TokenKind::Refresh).is_err(),
            "the kind is checked on every use"
        );
        let leeway = LEEWAY_SECS as i64;
        assert_eq!(keys.verified.get(&token, claims.exp + leeway), Some(claims.clone()));
        assert_eq!(
            keys.verified.get(&token, claims.exp + leeway + 1),
            None,
            "expired: forgotten"
        );
        let tampered = format!("{token}x");
        assert!(
            keys.verify(&tampered, TokenKind::Access).is_err(),
            "only the exact token is remembered"
        );
    }
}
