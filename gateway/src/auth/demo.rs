//! The demo account of `[gateway.demo_account]`: created, or its password and
//! plan reset, each time the gateway opens, so a fresh demo can always be
//! logged into, on a plan its own dashboard cannot exhaust.

use rand::Rng;
use rand::distr::Alphanumeric;

use super::Scope;
use super::password::PasswordHasher;
use crate::config::DemoAccountConfig;
use crate::error::GatewayError;
use crate::store::{Store, UserConflict, UserRecord, now_millis};

/// How to log into the demo account, as announced at start-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoLogin {
    /// The user name.
    pub username: String,
    /// The tenant it acts for.
    pub tenant: String,
    /// The password when the gateway generated it; `None` when it was configured
    /// (a configured password is not repeated in logs).
    pub generated_password: Option<String>,
}

/// Makes `account` ready to log into: creates the user in `store` with the
/// account's tenant and plan, or resets the password and plan of the user it
/// created before. Fails if the user name belongs to a user of another tenant.
pub async fn ensure(
    store: &dyn Store,
    hasher: &PasswordHasher,
    account: &DemoAccountConfig,
) -> Result<DemoLogin, GatewayError> {
    let plan = account.plan.as_str();
    let generated_password = account.password.is_empty().then(generate_password);
    let password = generated_password.clone().unwrap_or_else(|| account.password.clone());
    let hasher = hasher.clone();
    let password_hash = tokio::task::spawn_blocking(move || hasher.hash(&password))
        .await
        .map_err(|e| GatewayError::Config(format!("hashing the demo password failed: {e}")))?;
    let failed = |e: crate::store::StoreError| GatewayError::Config(format!("preparing the demo account failed: {e}"));
    match store.user_by_name(&account.username).await.map_err(failed)? {
        Some(user) if user.tenant_id == account.tenant => {
            store
                .reset_user(&account.username, &password_hash, plan)
                .await
                .map_err(failed)?;
        }
        Some(user) => {
            return Err(GatewayError::Config(format!(
                "demo_account: user {:?} already exists for tenant {:?}, not {:?}; choose another demo_account.username",
                account.username, user.tenant_id, account.tenant
            )));
        }
        None => {
            let user = UserRecord {
                tenant_id: account.tenant.clone(),
                username: account.username.clone(),
                email: format!("{}@demo.invalid", account.username.to_lowercase()),
                password_hash,
                scopes: Scope::ALL.iter().map(|s| s.as_str().to_owned()).collect(),
                plan: plan.to_owned(),
                created_at: now_millis(),
            };
            if let Err(conflict) = store.create_user(&user).await.map_err(failed)? {
                let what = match conflict {
                    UserConflict::Username => "user name",
                    UserConflict::Email => "e-mail address",
                };
                return Err(GatewayError::Config(format!(
                    "demo_account: the {what} of {:?} is taken; choose another demo_account.username",
                    account.username
                )));
            }
        }
    }
    tracing::info!(username = %account.username, tenant = %account.tenant, plan, "demo account ready");
    Ok(DemoLogin {
        username: account.username.clone(),
        tenant: account.tenant.clone(),
        generated_password,
    })
}

/// 20 random letters and digits, with at least one upper-case letter,
/// lower-case letter and digit so that it meets the password policy.
fn generate_password() -> String {
    loop {
        let password: String = rand::rng()
            .sample_iter(&Alphanumeric)
            .take(20)
            .map(char::from)
            .collect();
        if super::password::policy_violation(&password).is_none() {
            return password;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_meet_the_policy_and_differ() {
        let a = generate_password();
        let b = generate_password();
        assert_eq!(super::super::password::policy_violation(&a), None);
        assert_eq!(a.len(), 20);
        assert_ne!(a, b);
    }
}
