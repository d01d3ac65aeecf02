//! Linux-PAM return codes by number and by name, without asking libpam
//! (`pam_strerror` gives prose, and it is the library under test).

use std::fmt;

/// A return code of a libpam call, such as `pam_authenticate`.
///
/// The numbers are Linux-PAM's (`security/_pam_types.h`); other PAM
/// implementations number them differently.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PamCode(pub i32);

/// Every Linux-PAM code, indexed by its number.
const NAMES: [&str; 32] = [
    "PAM_SUCCESS",
    "PAM_OPEN_ERR",
    "PAM_SYMBOL_ERR",
    "PAM_SERVICE_ERR",
    "PAM_SYSTEM_ERR",
    "PAM_BUF_ERR",
    "PAM_PERM_DENIED",
    "PAM_AUTH_ERR",
    "PAM_CRED_INSUFFICIENT",
    "PAM_AUTHINFO_UNAVAIL",
    "PAM_USER_UNKNOWN",
    "PAM_MAXTRIES",
    "PAM_NEW_AUTHTOK_REQD",
    "PAM_ACCT_EXPIRED",
    "PAM_SESSION_ERR",
    "PAM_CRED_UNAVAIL",
    "PAM_CRED_EXPIRED",
    "PAM_CRED_ERR",
    "PAM_NO_MODULE_DATA",
    "PAM_CONV_ERR",
    "PAM_AUTHTOK_ERR",
    "PAM_AUTHTOK_RECOVERY_ERR",
    "PAM_AUTHTOK_LOCK_BUSY",
    "PAM_AUTHTOK_DISABLE_AGING",
    "PAM_TRY_AGAIN",
    "PAM_IGNORE",
    "PAM_ABORT",
    "PAM_AUTHTOK_EXPIRED",
    "PAM_MODULE_UNKNOWN",
    "PAM_BAD_ITEM",
    "PAM_CONV_AGAIN",
    "PAM_INCOMPLETE",
];

impl PamCode {
    /// `PAM_SUCCESS`.
    pub const SUCCESS: PamCode = PamCode(0);
    /// `PAM_OPEN_ERR`: a module could not be loaded.
    pub const OPEN_ERR: PamCode = PamCode(1);
    /// `PAM_SYMBOL_ERR`.
    pub const SYMBOL_ERR: PamCode = PamCode(2);
    /// `PAM_SERVICE_ERR`: error in a module (bad configuration).
    pub const SERVICE_ERR: PamCode = PamCode(3);
    /// `PAM_SYSTEM_ERR`.
    pub const SYSTEM_ERR: PamCode = PamCode(4);
    /// `PAM_BUF_ERR`.
    pub const BUF_ERR: PamCode = PamCode(5);
    /// `PAM_PERM_DENIED`.
    pub const PERM_DENIED: PamCode = PamCode(6);
    /// `PAM_AUTH_ERR`: authentication failure.
    pub const AUTH_ERR: PamCode = PamCode(7);
    /// `PAM_AUTHINFO_UNAVAIL`: the authentication data could not be read.
    pub const AUTHINFO_UNAVAIL: PamCode = PamCode(9);
    /// `PAM_USER_UNKNOWN`.
    pub const USER_UNKNOWN: PamCode = PamCode(10);
    /// `PAM_MAXTRIES`: too many failures; locked.
    pub const MAXTRIES: PamCode = PamCode(11);
    /// `PAM_SESSION_ERR`.
    pub const SESSION_ERR: PamCode = PamCode(14);
    /// `PAM_CRED_ERR`.
    pub const CRED_ERR: PamCode = PamCode(17);
    /// `PAM_CONV_ERR`: the conversation failed.
    pub const CONV_ERR: PamCode = PamCode(19);
    /// `PAM_IGNORE`.
    pub const IGNORE: PamCode = PamCode(25);
    /// `PAM_ABORT`.
    pub const ABORT: PamCode = PamCode(26);

    /// The C name, such as `PAM_AUTH_ERR`, or `None` for a number Linux-PAM
    /// does not define.
    pub fn name(self) -> Option<&'static str> {
        usize::try_from(self.0)
            .ok()
            .and_then(|i| NAMES.get(i))
            .copied()
    }

    /// The code with this C name.
    pub fn from_name(name: &str) -> Option<PamCode> {
        NAMES
            .iter()
            .position(|n| *n == name)
            .and_then(|i| i32::try_from(i).ok())
            .map(PamCode)
    }

    /// The C name, or `PAM_UNKNOWN_<n>` for a number Linux-PAM does not define.
    pub fn label(self) -> String {
        self.name()
            .map_or_else(|| format!("PAM_UNKNOWN_{}", self.0), str::to_owned)
    }
}

impl fmt::Display for PamCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.label(), self.0)
    }
}

impl fmt::Debug for PamCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_linux_pam_numbers() {
        assert_eq!(PamCode(0).name(), Some("PAM_SUCCESS"));
        assert_eq!(PamCode(7).name(), Some("PAM_AUTH_ERR"));
        assert_eq!(PamCode(19).name(), Some("PAM_CONV_ERR"));
        assert_eq!(PamCode(25).name(), Some("PAM_IGNORE"));
        assert_eq!(PamCode(31).name(), Some("PAM_INCOMPLETE"));
        assert_eq!(PamCode(32).name(), None);
        assert_eq!(PamCode(-1).name(), None);
        assert_eq!(PamCode::from_name("PAM_MAXTRIES"), Some(PamCode::MAXTRIES));
        assert_eq!(PamCode::from_name("PAM_NOPE"), None);
    }

    #[test]
    fn every_named_constant_has_its_own_name() {
        for (code, name) in [
            (PamCode::OPEN_ERR, "PAM_OPEN_ERR"),
            (PamCode::SERVICE_ERR, "PAM_SERVICE_ERR"),
            (PamCode::PERM_DENIED, "PAM_PERM_DENIED"),
            (PamCode::AUTHINFO_UNAVAIL, "PAM_AUTHINFO_UNAVAIL"),
            (PamCode::SESSION_ERR, "PAM_SESSION_ERR"),
            (PamCode::CRED_ERR, "PAM_CRED_ERR"),
            (PamCode::ABORT, "PAM_ABORT"),
        ] {
            assert_eq!(code.name(), Some(name));
        }
    }

    #[test]
    fn displays_name_and_number() {
        assert_eq!(PamCode::AUTH_ERR.to_string(), "PAM_AUTH_ERR (7)");
        assert_eq!(PamCode(99).to_string(), "PAM_UNKNOWN_99 (99)");
    }
}
