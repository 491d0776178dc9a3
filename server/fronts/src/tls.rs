//! The TLS settings every front shares (gRPC, Flight SQL, Postgres).

/// TLS for the gRPC port, PEM-encoded.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
    /// When set, clients must present a certificate this CA signed (mTLS);
    /// its subject CN is the agent's host identity.
    pub client_ca: Option<Vec<u8>>,
}
