//! Name-service lookups for the flow: `getpwnam_r`, `getgrouplist`, `getgrgid_r`.

use std::ffi::CString;

use mfa_core::flow::{Account, Directory};
use nix::unistd::{getgrouplist, Gid, Group, User};

/// The system's name service (files, LDAP, SSSD: whatever nsswitch says).
pub struct Nss;

impl Directory for Nss {
    fn account(&self, user: &str) -> Result<Option<Account>, String> {
        match User::from_name(user) {
            Ok(Some(u)) => Ok(Some(Account {
                uid: u.uid.as_raw(),
                gid: u.gid.as_raw(),
            })),
            Ok(None) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    fn groups(&self, user: &str, account: Account) -> Result<Vec<String>, String> {
        let name = CString::new(user).map_err(|e| e.to_string())?;
        let gids = getgrouplist(&name, Gid::from_raw(account.gid)).map_err(|e| e.to_string())?;
        let mut names = Vec::with_capacity(gids.len());
        for gid in gids {
            // A gid without a name cannot match a configured group name.
            if let Some(group) = Group::from_gid(gid).map_err(|e| e.to_string())? {
                names.push(group.name);
            }
        }
        Ok(names)
    }
}
