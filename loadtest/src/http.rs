//! Talking to the gateway over HTTP/1.1 with pooled keep-alive connections:
//! [`GatewayClient`] sends requests with the run's credential, and
//! [`sign_in`] gets that credential (a token, an API key, a login, or a fresh
//! registered user) and proves it works before any load is sent.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

/// Why a request got no HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No answer within the request timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The connection could not be made or broke.
    #[error("{0}")]
    Transport(String),
    /// The request could not be built (a bad path or header).
    #[error("invalid request: {0}")]
    Invalid(String),
}

impl CallError {
    /// The error kind a report counts this under.
    pub fn kind(&self) -> &'static str {
        match self {
            CallError::Timeout(_) => "timeout",
            CallError::Transport(_) => "connection",
            CallError::Invalid(_) => "invalid_request",
        }
    }
}

/// The error kind of an HTTP status that is not a success, such as `http_429`.
pub fn status_kind(status: StatusCode) -> String {
    format!("http_{}", status.as_u16())
}

/// How requests authenticate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// `X-API-Key: <key>`.
    ApiKey(String),
}

/// An answer: its status and body.
#[derive(Clone, Debug)]
pub struct Reply {
    /// The HTTP status.
    pub status: StatusCode,
    /// The body, whole.
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON (`Null` when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The gateway's error message (`error.message`), or the start of the body.
    pub fn describe(&self) -> String {
        let json = self.json();
        match json["error"]["message"].as_str() {
            Some(message) => format!("HTTP {}: {message}", self.status),
            None => format!(
                "HTTP {}: {}",
                self.status,
                String::from_utf8_lossy(&self.body[..self.body.len().min(200)])
            ),
        }
    }
}

/// An HTTP client of one gateway.
#[derive(Clone)]
pub struct GatewayClient {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
    credential: Option<Credential>,
    timeout: Duration,
}

impl GatewayClient {
    /// A client of the gateway at `base` (`http://host:port`) whose requests each may take `timeout`.
    pub fn new(base: &str, timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
            base: base.trim_end_matches('/').to_owned(),
            credential: None,
            timeout,
        }
    }

    /// The same client, sending `credential` with every request.
    pub fn with_credential(mut self, credential: Credential) -> Self {
        self.credential = Some(credential);
        self
    }

    /// The credential sent, if any.
    pub fn credential(&self) -> Option<&Credential> {
        self.credential.as_ref()
    }

    /// Sends `method path` with `body` as JSON and reads the whole answer.
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Reply, CallError> {
        match body {
            Some(body) => {
                let bytes = Bytes::from(body.to_string());
                self.send(method, path, Some(("application/json", bytes))).await
            }
            None => self.send(method, path, None).await,
        }
    }

    /// Sends `method path` with a body of the given content type, if any, and reads the whole answer.
    pub async fn send(&self, method: Method, path: &str, body: Option<(&str, Bytes)>) -> Result<Reply, CallError> {
        let mut request = Request::builder().method(method).uri(format!("{}{path}", self.base));
        match &self.credential {
            Some(Credential::Bearer(token)) => request = request.header("authorization", format!("Bearer {token}")),
            Some(Credential::ApiKey(key)) => request = request.header("x-api-key", key.as_str()),
            None => {}
        }
        let bytes = match body {
            Some((content_type, bytes)) => {
                request = request.header("content-type", content_type);
                bytes
            }
            None => Bytes::new(),
        };
        let request = request
            .body(Full::new(bytes))
            .map_err(|e| CallError::Invalid(e.to_string()))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| CallError::Transport(describe_transport(&e)))?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| CallError::Transport(e.to_string()))?
                .to_bytes();
            Ok(Reply { status, body })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| CallError::Timeout(self.timeout))?
    }
}

/// The innermost cause of a client error (hyper's own text is only "client error (Connect)").
fn describe_transport(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

/// Why the run cannot start against this gateway.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// The gateway does not answer its health check.
    #[error("the target is down: GET {url} {reason}")]
    TargetDown {
        /// The URL probed.
        url: String,
        /// What happened.
        reason: String,
    },
    /// The gateway refused the credential.
    #[error("authentication refused: {0}")]
    Refused(String),
}

/// How a run authenticates, as given on the command line.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct AuthArgs {
    /// Access token (`Authorization: Bearer`), e.g. from `pulse token`.
    #[arg(long, env = "PULSE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// API key (`X-API-Key`), for the API scenario.
    #[arg(long, env = "PULSE_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// User to log in as (`POST /api/v1/auth/login`); needs --password.
    #[arg(long)]
    pub user: Option<String>,
    /// Password of --user.
    #[arg(long, env = "PULSE_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
}

/// Checks that the gateway is up, gets the run's credential and proves it with
/// `GET /api/v1/auth/me`. Without any credential given, registers a new user
/// (named `loadtest-…`) for the run.
pub async fn sign_in(client: &GatewayClient, auth: &AuthArgs) -> Result<GatewayClient, SignInError> {
    let down = |reason: String| SignInError::TargetDown {
        url: format!("{}/health/live", client.base),
        reason,
    };
    match client.call(Method::GET, "/health/live", None).await {
        Ok(reply) if reply.status.is_success() => {}
        Ok(reply) => return Err(down(format!("answered {}", reply.status))),
        Err(error) => return Err(down(error.to_string())),
    }
    let credential = if let Some(token) = &auth.token {
        Credential::Bearer(token.trim().to_owned())
    } else if let Some(key) = &auth.api_key {
        Credential::ApiKey(key.trim().to_owned())
    } else if let Some(user) = &auth.user {
        let password = auth
            .password
            .as_deref()
            .ok_or_else(|| SignInError::Refused("--user needs --password (or PULSE_PASSWORD)".into()))?;
        let body = json!({"username": user, "password": password});
        Credential::Bearer(token_from(client, "/api/v1/auth/login", &body, StatusCode::OK).await?)
    } else {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!("loadtest-{}-{nanos}", std::process::id());
        let body = json!({"username": name, "email": format!("{name}@loadtest.invalid"), "password": format!("Load-{nanos}-Test1")});
        Credential::Bearer(token_from(client, "/api/v1/auth/register", &body, StatusCode::CREATED).await?)
    };
    let signed = client.clone().with_credential(credential);
    match signed.call(Method::GET, "/api/v1/auth/me", None).await {
        Ok(reply) if reply.status.is_success() => Ok(signed),
        Ok(reply) => Err(SignInError::Refused(format!(
            "GET /api/v1/auth/me: {}",
            reply.describe()
        ))),
        Err(error) => Err(down(error.to_string())),
    }
}

async fn token_from(
    client: &GatewayClient,
    path: &str,
    body: &Value,
    expected: StatusCode,
) -> Result<String, SignInError> {
    let reply = client
        .call(Method::POST, path, Some(body))
        .await
        .map_err(|e| SignInError::Refused(format!("POST {path}: {e}")))?;
    if reply.status != expected {
        return Err(SignInError::Refused(format!("POST {path}: {}", reply.describe())));
    }
    reply.json()["access_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| SignInError::Refused(format!("POST {path}: no access_token in the answer")))
}
