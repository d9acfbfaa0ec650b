//! The certificates a TLS client of powgate trusts: the CAs of a configured
//! PEM file, or else the system's roots. One rule for every outgoing TLS
//! connection (proxy mode's https upstream, PostgreSQL's `verify-full`),
//! each naming its own setting in the errors.

use std::path::Path;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

/// How one user of [`root_store`] names things in its errors.
pub(crate) struct RootsFor<'a> {
    /// The CA file as the operator set it, e.g. `POW_UPSTREAM_CA_FILE=/x.pem`.
    pub file_label: &'a dyn Fn(&Path) -> String,
    /// What lacks system roots, and the fix: the end of "no system root
    /// certificates found for …".
    pub no_system_roots: &'a str,
}

/// The certificates of `ca_file` alone when it is set, else the system's.
///
/// # Errors
/// An unreadable or certificate-less file, or no system roots at all.
pub(crate) fn root_store(
    ca_file: Option<&Path>,
    names: &RootsFor<'_>,
) -> anyhow::Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(file) = ca_file {
        let label = (names.file_label)(file);
        let certs = CertificateDer::pem_file_iter(file)
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(|e| {
                anyhow::anyhow!("cannot read {label}: {e}; it must hold PEM certificates")
            })?;
        roots.add_parsable_certificates(certs);
        if roots.is_empty() {
            anyhow::bail!("{label} holds no usable certificate");
        }
        return Ok(roots);
    }
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::warn!(error = %e, "cannot read part of the system's certificate store");
    }
    roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        anyhow::bail!(
            "no system root certificates found for {}",
            names.no_system_roots
        );
    }
    Ok(roots)
}
