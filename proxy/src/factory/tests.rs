use super::*;
use std::time::Duration;

fn route(url: &str) -> RouteConfig {
    match url.parse::<ProviderUrl>().unwrap() {
        ProviderUrl::Route(r) => *r,
        ProviderUrl::Local { .. } => panic!("{url} is local"),
    }
}

fn refused(url: &str) -> String {
    url.parse::<ProviderUrl>().unwrap_err().to_string()
}

#[test]
fn ecr_urls() {
    let r = route("ecr://123456789012/us-east-1/team");
    assert_eq!(r.provider, "ecr");
    assert_eq!((r.account.as_deref(), r.region.as_deref()), (Some("123456789012"), Some("us-east-1")));
    assert_eq!(r.upstream_prefix, "team");
    assert_eq!(route("ecr://123456789012/us-gov-west-1/a/b/").upstream_prefix, "a/b");
    assert_eq!(route("ecr://123456789012/eu-west-1").upstream_prefix, "");
    assert!(refused("ecr://123456789012").contains("ecr://ACCOUNT/REGION"));
    assert!(refused("ecr://12345/us-east-1").contains("12 digits"));
    assert!(refused("ecr://12345678901a/us-east-1").contains("12 digits"));
    assert!(refused("ecr://1234567890123/us-east-1").contains("12 digits"));
    assert!(refused("ecr://123456789012/US-EAST-1").contains("region"));
    assert!(refused("ecr://123456789012/useast1").contains("region"));
    assert!(refused("ecr://123456789012/us-east-1/Team").contains("prefix"));
    assert!(refused("ecr://123456789012//us-east-1").contains("empty"));
    assert!(refused("ecr://123456789012/us-east-1/../x").contains("prefix"));
}

#[test]
fn gar_urls() {
    let r = route("gar://my-project/europe-west1/images");
    assert_eq!(r.provider, "gar");
    #[cfg(feature = "gar")]
    {
        let s = r.gar.unwrap();
        assert_eq!(s.project.as_deref(), Some("my-project"));
        assert_eq!(s.location.as_deref(), Some("europe-west1"));
        assert_eq!(s.repository.as_deref(), Some("images"));
    }
    assert!(refused("gar://my-project/europe-west1").contains("gar://PROJECT/LOCATION/REPOSITORY"));
    assert!(refused("gar://my-project/europe-west1/images/team").contains("no prefix"));
    assert!(refused("gar://My-Project/europe-west1/images").contains("project id"));
    assert!(refused("gar://my-project/europe_west1/images").contains("location"));
    assert!(refused("gar://my-project/us/9images").contains("repository id"));
}

#[test]
fn acr_urls() {
    for url in ["acr://myregistry", "acr://myregistry.azurecr.io/", "acr://MyRegistry"] {
        let r = route(url);
        assert_eq!((r.provider.as_str(), r.upstream_prefix.as_str()), ("acr", ""), "{url}");
        #[cfg(feature = "acr")]
        assert_eq!(r.acr.unwrap().registry_name.as_deref(), Some("myregistry"), "{url}");
    }
    assert_eq!(route("acr://myregistry.azurecr.io/team/x").upstream_prefix, "team/x");
    assert!(refused("acr://reg").contains("5 to 50"));
    assert!(refused("acr://my-registry").contains("5 to 50"));
    assert!(refused("acr://myregistry.example.com").contains("5 to 50"));
}

#[test]
fn local_and_generic_urls() {
    match "local:///var/lib/regbridge".parse::<ProviderUrl>().unwrap() {
        ProviderUrl::Local { data_dir } => assert_eq!(data_dir, PathBuf::from("/var/lib/regbridge")),
        other => panic!("{other:?}"),
    }
    assert!(refused("local://host/var/lib").contains("three slashes"));
    assert!(refused("local:///").contains("three slashes"));
    let r = route("https://registry.example.com:8443/mirror/library");
    assert_eq!(r.provider, "generic");
    assert_eq!(r.registry.as_deref(), Some("https://registry.example.com:8443"));
    assert_eq!(r.upstream_prefix, "mirror/library");
    assert_eq!(route("http://127.0.0.1:5000").upstream_prefix, "");
    assert!(refused("https:///prefix").contains("host"));
    assert!(refused("https://registry.example.com:99999").contains("registry.example.com"));
}

#[test]
fn hostile_urls_are_refused() {
    for url in [
        "https://robot:hunter2@registry.example.com/x",
        "ecr://AKIAEXAMPLE:hunter2@123456789012/us-east-1",
        "acr://sp:hunter2@myregistry",
        "gar://hunter2@my-project/us/images",
    ] {
        let err = refused(url);
        assert!(err.contains("credentials do not go in the URL") && err.contains("AWS chain"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
    assert!(refused("s3://bucket/x").contains("unknown scheme \"s3\""));
    assert!(refused("registry.example.com/x").contains("SCHEME://"));
    assert!(refused("https://registry.example.com/x?token=1").contains("query"));
    assert!(refused("ecr://123456789012/us-east-1#x").contains("fragment"));
    assert!(refused("ecr://123456789012/us-east-1/te%61m").contains("percent"));
    assert!(refused("ecr://123456789012/us-east-1/te am").contains("whitespace"));
    assert!(refused("ecr://123456789012/us-east-1/\nteam").contains("control"));
}

#[tokio::test]
async fn providers_from_urls_and_routes() {
    let generic = provider_from_url("https://registry.example.com/mirror", "").await.unwrap();
    assert_eq!(generic.registry_endpoint(), "https://registry.example.com");
    assert_eq!(generic.upstream_repository_prefix(), "mirror");

    let config = crate::config_file::FileConfig::parse(
        "[[routes]]\nprovider = \"generic\"\nregistry = \"registry.example.com\"\nupstream_prefix = \"library\"",
    )
    .unwrap();
    let from_route = provider(&config.routes[0]).await.unwrap();
    assert_eq!(from_route.upstream_repository_prefix(), "library");

    assert!(provider(&RouteConfig::local()).await.unwrap_err().to_string().contains("local_provider"));
    let mut unknown = RouteConfig::local();
    unknown.provider = "s3".into();
    assert!(provider(&unknown).await.unwrap_err().to_string().contains("unknown provider"));
    let mut half = config.routes[0].clone();
    half.username = Some("robot".into());
    assert!(provider(&half).await.unwrap_err().to_string().contains("both username and password"));
}

#[tokio::test]
async fn local_provider_needs_a_server_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("local://{}", dir.path().display());
    let err = provider_from_url(&url, "http://127.0.0.1:5000").await.unwrap_err().to_string();
    assert!(err.contains("no signing.key") && err.contains(&dir.path().display().to_string()), "{err}");
    assert!(!dir.path().join("signing.key").exists(), "no key is created");

    TokenSigner::load_or_create(&dir.path().join("signing.key")).unwrap();
    let local = provider_from_url(&url, "http://127.0.0.1:5000").await.unwrap();
    local.create_repository("team/app").await.unwrap();
    let creds = local.generate_credentials("team/app", regbridge::Permissions::Pull, Duration::from_secs(60)).await;
    assert_eq!(creds.unwrap().username, "local");
    assert_eq!(local.registry_endpoint(), "http://127.0.0.1:5000");
}

#[cfg(feature = "ecr")]
#[tokio::test]
async fn ecr_provider_from_a_url() {
    let ecr = provider_from_url("ecr://123456789012/us-east-1/team", "").await.unwrap();
    assert!(
        ecr.registry_endpoint().contains("123456789012.dkr.ecr.us-east-1.amazonaws.com"),
        "{}",
        ecr.registry_endpoint()
    );
    assert_eq!(ecr.upstream_repository_prefix(), "team");
}

#[cfg(feature = "gar")]
#[tokio::test]
async fn gar_provider_from_a_url() {
    let gar = provider_from_url("gar://my-project/europe-west1/images", "").await.unwrap();
    assert_eq!(gar.registry_endpoint(), "https://europe-west1-docker.pkg.dev");
}
