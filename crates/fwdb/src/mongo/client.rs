//! The driver's options from [`MongoConfig`].

use crate::config::{MongoConfig, ReadPreference};
use crate::error::{Error, ErrorKind, Result};
use mongodb::options::{
    Acknowledgment, AuthMechanism, ClientOptions, Credential, ReadPreference as DriverReadPreference,
    ReadPreferenceOptions, SelectionCriteria, Tls, TlsOptions, WriteConcern,
};
use mongodb::{Client, Database};

/// The connection string: `mongo.uri`, or one made from `mongo.hosts`.
fn connection_string(cfg: &MongoConfig) -> String {
    match &cfg.uri {
        Some(uri) => uri.clone(),
        None => {
            let rs = cfg.replica_set.as_deref().map(|r| format!("/?replicaSet={r}")).unwrap_or_default();
            format!("mongodb://{}{rs}", cfg.hosts.join(","))
        }
    }
}

/// Everything the configuration says, as the driver's options.
pub async fn client_options(cfg: &MongoConfig) -> Result<ClientOptions> {
    let mut o = ClientOptions::parse(connection_string(cfg))
        .await
        .map_err(|e| Error::new(ErrorKind::Config, "mongo.uri: cannot be used").with_source(e))?;
    o.app_name = Some(cfg.app_name.clone());
    o.min_pool_size = Some(cfg.pool.min_size);
    o.max_pool_size = Some(cfg.pool.max_size);
    // Retryable writes survive a primary election without surfacing an error.
    o.retry_writes = Some(true);
    o.selection_criteria = Some(SelectionCriteria::ReadPreference(read_preference(cfg.read_preference)));
    o.write_concern = Some(write_concern(&cfg.write_concern));
    if let Some(user) = &cfg.user {
        let mut cred = Credential::default();
        cred.username = Some(user.clone());
        cred.password = cfg.password.as_ref().map(|p| p.expose().to_string());
        cred.source = Some(cfg.auth_source.clone());
        cred.mechanism = Some(mechanism(&cfg.auth_mechanism)?);
        o.credential = Some(cred);
    }
    if cfg.tls.enabled {
        let mut tls = TlsOptions::default();
        tls.ca_file_path = cfg.tls.ca_file.clone();
        tls.cert_key_file_path = cfg.tls.cert_key_file.clone();
        o.tls = Some(Tls::Enabled(tls));
    }
    Ok(o)
}

fn read_preference(p: ReadPreference) -> DriverReadPreference {
    let options = Some(ReadPreferenceOptions::default());
    match p {
        ReadPreference::Primary => DriverReadPreference::Primary,
        ReadPreference::PrimaryPreferred => DriverReadPreference::PrimaryPreferred { options },
        ReadPreference::Secondary => DriverReadPreference::Secondary { options },
        ReadPreference::SecondaryPreferred => DriverReadPreference::SecondaryPreferred { options },
        ReadPreference::Nearest => DriverReadPreference::Nearest { options },
    }
}

fn write_concern(w: &str) -> WriteConcern {
    let mut wc = WriteConcern::default();
    wc.w = Some(match w.parse::<u32>() {
        Ok(n) => Acknowledgment::Nodes(n),
        Err(_) => Acknowledgment::Majority,
    });
    wc
}

fn mechanism(name: &str) -> Result<AuthMechanism> {
    name.parse::<AuthMechanism>().map_err(|e| {
        Error::new(ErrorKind::Config, format!("mongo.auth_mechanism: `{name}` is not supported")).with_source(e)
    })
}

/// The one client a process should create (each holds its own pools).
pub async fn client(cfg: &MongoConfig) -> Result<Client> {
    Client::with_options(client_options(cfg).await?).map_err(Error::from)
}

/// The configured database on a new client.
pub async fn mongo_database(cfg: &MongoConfig) -> Result<Database> {
    Ok(client(cfg).await?.database(&cfg.database))
}
