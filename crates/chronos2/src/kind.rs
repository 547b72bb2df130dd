//! The handle of a backend of the [`crate::registry`] and why one cannot run: the bottom of the
//! facade's modules (it imports none of them), so that errors can name backends.

/// A backend of the registry: an index into [`crate::registry::PROVIDERS`]. Its name, abilities
/// and loading are methods of the registry ([`BackendKind::name`], [`BackendKind::usable`], ...).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BackendKind(pub(crate) usize);

/// Why a backend cannot run here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    #[error("not compiled in (rebuild with `--features {feature}`)")]
    NotCompiled { feature: &'static str },
    /// The backend's own check failed on this machine.
    #[error("{0}")]
    Probe(String),
}
