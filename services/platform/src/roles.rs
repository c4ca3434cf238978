//! Roles an account may hold beyond being a user (`moderator`, `marketing`, `admin`).
//! They travel in the access token's `roles` claim; the set is small and closed, so a
//! token's roles fit in a copyable bit set and checking one costs nothing.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Moderates the community board and chat.
    Moderator,
    /// Runs campaigns.
    Marketing,
    /// Operates the platform.
    Admin,
}

/// The longest role name accepted anywhere (names are also stored in the auth database).
pub const MAX_NAME_LEN: usize = 32;

impl Role {
    pub const ALL: [Role; 3] = [Role::Moderator, Role::Marketing, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Moderator => "moderator",
            Role::Marketing => "marketing",
            Role::Admin => "admin",
        }
    }

    /// Parses a role name exactly as stored: lowercase, one of [`Role::ALL`].
    pub fn parse(name: &str) -> Result<Role, String> {
        let known = || Role::ALL.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ");
        if name.is_empty()
            || name.len() > MAX_NAME_LEN
            || !name.chars().all(|c| c.is_ascii_lowercase() || c == '-' || c == '_')
        {
            return Err(format!(
                "role names are 1-{MAX_NAME_LEN} lowercase letters, '-' or '_'; known roles: {}",
                known()
            ));
        }
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == name)
            .ok_or_else(|| format!("unknown role `{name}`; known roles: {}", known()))
    }

    fn bit(self) -> u8 {
        match self {
            Role::Moderator => 1,
            Role::Marketing => 2,
            Role::Admin => 4,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of roles.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Roles(u8);

impl Roles {
    pub fn contains(self, role: Role) -> bool {
        self.0 & role.bit() != 0
    }

    pub fn insert(&mut self, role: Role) {
        self.0 |= role.bit();
    }

    pub fn iter(self) -> impl Iterator<Item = Role> {
        Role::ALL.into_iter().filter(move |r| self.contains(*r))
    }

    /// The roles among `names`; names this version does not know are ignored (a newer
    /// auth may mint roles an older service has no use for).
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Roles {
        let mut roles = Roles::default();
        for role in names.iter().filter_map(|n| Role::parse(n.as_ref()).ok()) {
            roles.insert(role);
        }
        roles
    }

    pub fn names(self) -> Vec<String> {
        self.iter().map(|r| r.as_str().to_owned()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_are_lowercase_bounded_and_known() {
        assert_eq!(Role::parse("moderator"), Ok(Role::Moderator));
        for bad in ["", "Moderator", "MARKETING", "superuser", "admin ", &"a".repeat(33)] {
            assert!(Role::parse(bad).is_err(), "{bad}");
        }
        assert!(Role::parse("superuser").unwrap_err().contains("moderator, marketing, admin"));
    }

    #[test]
    fn a_role_set_round_trips_through_names_and_ignores_unknown_ones() {
        let roles = Roles::from_names(&["marketing", "admin", "time-traveller"]);
        assert!(roles.contains(Role::Marketing) && roles.contains(Role::Admin));
        assert!(!roles.contains(Role::Moderator));
        assert_eq!(roles.names(), vec!["marketing", "admin"]);
    }
}
