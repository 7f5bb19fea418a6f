//! The CA the guest trusts and the leaf certificates it signs, one per name, cached.

use super::InterceptError;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, GeneralSubtree, IsCa, KeyPair,
    KeyUsagePurpose, NameConstraints, SerialNumber, PKCS_ECDSA_P256_SHA256,
};
use rustls::crypto::ring::sign::any_supported_type;
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// Leaves kept; the oldest makes room.
pub(crate) const CACHE: usize = 1000;
/// How far back a leaf's validity starts (a TCG guest's clock lags the host's).
pub(crate) const BACKDATE: Duration = Duration::from_secs(2 * 3600);
/// How long a leaf is valid.
const LEAF_LIFE: Duration = Duration::from_secs(24 * 3600);
/// A cached leaf is replaced once this old, well before it expires.
const LEAF_REUSE: Duration = Duration::from_secs(12 * 3600);
/// How long a generated CA is valid (it lives as long as one sandbox run).
const CA_LIFE: Duration = Duration::from_secs(365 * 24 * 3600);

/// A signing CA and its leaf cache.
pub(crate) struct Authority {
    cert: rcgen::Certificate,
    key: KeyPair,
    /// The CA certificate as the guest sees it.
    der: CertificateDer<'static>,
    pem: String,
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    leaves: HashMap<String, (Instant, Arc<CertifiedKey>)>,
    order: VecDeque<String>,
}

fn cert_error(error: impl std::fmt::Display) -> InterceptError {
    InterceptError::Certificate(error.to_string())
}

/// A random positive 128-bit serial.
fn serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f;
    SerialNumber::from(bytes.to_vec())
}

impl Authority {
    /// A fresh ECDSA P-256 CA allowed to sign only below `subtrees` (`None`: anything).
    pub(crate) fn generate(subtrees: Option<Vec<String>>) -> Result<Authority, InterceptError> {
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "microsandbox sandbox CA");
        params.distinguished_name.push(DnType::OrganizationName, "microsandbox");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + CA_LIFE;
        params.serial_number = Some(serial());
        params.name_constraints = subtrees.map(|names| {
            let mut names: Vec<String> = names;
            names.sort();
            names.dedup();
            NameConstraints {
                permitted_subtrees: names.into_iter().map(GeneralSubtree::DnsName).collect(),
                excluded_subtrees: Vec::new(),
            }
        });
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(cert_error)?;
        let cert = params.self_signed(&key).map_err(cert_error)?;
        let der = cert.der().clone();
        let pem = cert.pem();
        Ok(Authority::from_parts(cert, key, der, pem))
    }

    /// The user's CA: `cert_pem` is what the guest trusts, `key_pem` (PKCS#8) signs.
    pub(crate) fn given(cert_pem: &str, key_pem: &str) -> Result<Authority, InterceptError> {
        use rustls_pki_types::pem::PemObject;
        let der =
            CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|e| InterceptError::BadPem(e.to_string()))?;
        let key = KeyPair::from_pem(key_pem).map_err(|e| InterceptError::BadPem(e.to_string()))?;
        // rcgen signs with an issuer it made itself; one with the given CA's subject name and
        // key stands in for it (issuer names are compared byte for byte, so it is copied raw).
        let mut params = CertificateParams::default();
        params.distinguished_name =
            super::dn::subject(&der).ok_or_else(|| InterceptError::BadPem("CA certificate subject".into()))?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let cert = params.self_signed(&key).map_err(cert_error)?;
        Ok(Authority::from_parts(
            cert,
            key,
            der,
            cert_pem.trim().to_string() + "\n",
        ))
    }

    fn from_parts(cert: rcgen::Certificate, key: KeyPair, der: CertificateDer<'static>, pem: String) -> Authority {
        Authority {
            cert,
            key,
            der,
            pem,
            cache: Mutex::new(Cache::default()),
        }
    }

    pub(crate) fn pem(&self) -> String {
        self.pem.clone()
    }

    /// The leaf for `name` (normalized), from the cache when it has a fresh one.
    pub(crate) fn leaf(&self, name: &str) -> Result<Arc<CertifiedKey>, InterceptError> {
        let now = Instant::now();
        if let Some((made, leaf)) = self.lock().leaves.get(name) {
            if now.duration_since(*made) < LEAF_REUSE {
                return Ok(leaf.clone());
            }
        }
        let leaf = Arc::new(self.sign(name)?);
        let mut cache = self.lock();
        if cache.leaves.insert(name.to_string(), (now, leaf.clone())).is_none() {
            cache.order.push_back(name.to_string());
        }
        while cache.order.len() > CACHE {
            if let Some(old) = cache.order.pop_front() {
                cache.leaves.remove(&old);
            }
        }
        Ok(leaf)
    }

    /// A new leaf for `name`: SAN = `name`, backdated, valid a day, its own P-256 key.
    fn sign(&self, name: &str) -> Result<CertifiedKey, InterceptError> {
        let mut params = CertificateParams::new(vec![name.to_string()]).map_err(cert_error)?;
        params.distinguished_name.push(DnType::CommonName, name);
        let now = OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + LEAF_LIFE;
        params.serial_number = Some(serial());
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(cert_error)?;
        let cert = params.signed_by(&key, &self.cert, &self.key).map_err(cert_error)?;
        let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let signer = any_supported_type(&private)?;
        Ok(CertifiedKey::new(vec![cert.der().clone(), self.der.clone()], signer))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
