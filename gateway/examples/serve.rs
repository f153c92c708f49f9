//! A gateway on its own, for benchmarks and manual poking (the real entry point
//! is `pulse serve`): prints an access token for a fresh tenant, then serves
//! until Ctrl-C. Rate limiting uses the unlimited `enterprise` plan.
//!
//! `PULSE_JWT_SECRET=... cargo run --release -p pulse-gateway --example serve -- ADDR DATA_DIR [REDIS_URL]`

use std::time::Duration;

use pulse_gateway::{Gateway, GatewayConfig, JwtSecret, Scope, StoreConfig, issue_token, serve};

/// The allocator of the `pulse` binary, so that figures measured here hold for it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(listen), Some(data_dir)) = (args.first(), args.get(1)) else {
        return Err("usage: serve ADDR DATA_DIR [REDIS_URL]".into());
    };
    let mut config = GatewayConfig {
        listen: listen.parse()?,
        data_dir: data_dir.into(),
        ..GatewayConfig::default()
    };
    config.rate_limit.default_plan = "enterprise".into();
    if let Some(url) = args.get(2) {
        config.store = StoreConfig::Redis {
            url: url.clone(),
            key_prefix: "bench:".into(),
        };
    }
    let secret = JwtSecret::from_env(|name| std::env::var(name).ok(), false)?;
    let gateway = Gateway::open_with_secret(config.clone(), secret.clone()).await?;
    gateway.readiness().set_pipeline_ready(true);
    let token = issue_token(
        &secret,
        uuid::Uuid::new_v4().to_string().parse()?,
        &[Scope::Read, Scope::Write],
        Duration::from_secs(3600),
    );
    println!("{token}");
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let readiness = gateway.readiness();
    serve(listener, gateway.router(), async move {
        let _ = tokio::signal::ctrl_c().await;
        readiness.set_shutting_down();
    })
    .await?;
    Ok(())
}
