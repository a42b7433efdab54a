//! ECR, GAR and ACR providers built from configuration with the factory the server uses: a provider URL
//! (`ecr://ACCOUNT/REGION[/prefix]`, `gar://PROJECT/LOCATION/REPOSITORY`, `acr://NAME[/prefix]`) or the
//! `[[routes]]` table of `regbridge serve --config`. Each cloud runs only when its credentials are set;
//! otherwise the example says what it needs and exits 0.
//!
//! ```sh
//! REGBRIDGE_EXAMPLE_ECR=ecr://123456789012/us-east-1/team AWS_PROFILE=dev \
//!   cargo run -p regbridge-proxy --example cloud_from_config
//! ```

use regbridge_proxy::config_file::FileConfig;
use regbridge_proxy::factory;

/// (variable naming the provider URL, variables of which one must be set for credentials, what they are)
const CLOUDS: [(&str, &[&str], &str); 3] = [
    ("REGBRIDGE_EXAMPLE_ECR", &["AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE"], "AWS credentials"),
    ("REGBRIDGE_EXAMPLE_GAR", &["GOOGLE_APPLICATION_CREDENTIALS"], "Application Default Credentials"),
    (
        "REGBRIDGE_EXAMPLE_ACR",
        &["AZURE_CLIENT_ID"],
        "an Entra ID identity (and REGBRIDGE_ACR_SUBSCRIPTION_ID, REGBRIDGE_ACR_RESOURCE_GROUP)",
    ),
];

#[tokio::main]
async fn main() -> regbridge::Result<()> {
    // The same routes as a configuration file; parsing needs no credentials.
    let config = FileConfig::parse(
        r#"
[[routes]]
prefix = "aws"
provider = "ecr"
region = "us-east-1"
account = "123456789012"
upstream_prefix = "team"

[[routes]]
prefix = "gcp"
provider = "gar"
[routes.gar]
project = "my-project"
location = "europe-west1"
repository = "images"
"#,
    )?;
    println!(
        "parsed {} routes: {:?}",
        config.routes.len(),
        config.routes.iter().map(|r| &r.provider).collect::<Vec<_>>()
    );

    let mut ran = 0;
    for (var, creds, what) in CLOUDS {
        let (Ok(url), true) = (std::env::var(var), creds.iter().any(|c| std::env::var_os(c).is_some())) else {
            println!("skipped: set {var} to a provider URL and {what} ({}) to run it", creds.join(" or "));
            continue;
        };
        let provider = factory::provider_from_url(&url, "").await?;
        println!("{url}: {provider} at {}", provider.registry_endpoint());
        ran += 1;
    }
    if ran == 0 {
        println!("no cloud credentials set: nothing was called (this is not a failure)");
    }
    Ok(())
}
