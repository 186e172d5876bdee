//! The two parties of a migration, users and what each role may do.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::DomainError;
use crate::ids::{Email, OrgName, Text};

/// Which side of the migration a person or item belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PartyKind {
    /// The software vendor ("our team").
    Vendor,
    /// The customer organisation ("your team").
    Customer,
}

impl PartyKind {
    /// Both parties, vendor first: the order documents list signatures in.
    pub const BOTH: [PartyKind; 2] = [PartyKind::Vendor, PartyKind::Customer];

    /// Parses `vendor` or `customer`.
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "vendor" => Ok(Self::Vendor),
            "customer" => Ok(Self::Customer),
            other => Err(DomainError::Invalid {
                field: "party",
                reason: format!("'{other}' is neither 'vendor' nor 'customer'"),
            }),
        }
    }
    /// `vendor` or `customer`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Vendor => "vendor",
            Self::Customer => "customer",
        }
    }
}

impl fmt::Display for PartyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A party with, for a customer, its organisation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Party {
    /// The vendor.
    Vendor,
    /// A customer organisation.
    Customer {
        /// The organisation the user belongs to.
        org: OrgName,
    },
}

impl Party {
    /// Builds a party from its kind and, for customers, the organisation (required).
    pub fn new(kind: PartyKind, org: Option<OrgName>) -> Result<Self, DomainError> {
        match (kind, org) {
            (PartyKind::Vendor, None) => Ok(Self::Vendor),
            (PartyKind::Vendor, Some(_)) => Err(DomainError::Invalid {
                field: "org",
                reason: "a vendor user belongs to no customer organisation".into(),
            }),
            (PartyKind::Customer, Some(org)) => Ok(Self::Customer { org }),
            (PartyKind::Customer, None) => Err(DomainError::Invalid {
                field: "org",
                reason: "a customer user needs its organisation (--org)".into(),
            }),
        }
    }
    /// The kind of party.
    pub fn kind(&self) -> PartyKind {
        match self {
            Self::Vendor => PartyKind::Vendor,
            Self::Customer { .. } => PartyKind::Customer,
        }
    }
    /// The customer organisation, if any.
    pub fn org(&self) -> Option<&OrgName> {
        match self {
            Self::Vendor => None,
            Self::Customer { org } => Some(org),
        }
    }
}

impl fmt::Display for Party {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Vendor => f.write_str("vendor"),
            Self::Customer { org } => write!(f, "customer ({org})"),
        }
    }
}

/// What a user may do within its party.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Signs, accepts, waives, manages users of its party.
    Admin,
    /// Works on the plan and the checklist.
    Member,
}

impl Role {
    /// Parses `admin` or `member`.
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "admin" => Ok(Self::Admin),
            "member" => Ok(Self::Member),
            other => Err(DomainError::Invalid {
                field: "role",
                reason: format!("'{other}' is neither 'admin' nor 'member'"),
            }),
        }
    }
    /// `admin` or `member`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Member => "member",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A person who acts in cutover. The password hash, when set, is kept by the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Login and identity.
    pub email: Email,
    /// Display name, used in signatures.
    pub name: Text,
    /// The party the user acts for.
    pub party: Party,
    /// The user's role within its party.
    pub role: Role,
    /// When the user was added.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl User {
    /// Whether the user is an admin of its party.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Whether this user may see and act on a project of the given organisation.
    pub fn can_see_org(&self, org: &OrgName) -> bool {
        match &self.party {
            Party::Vendor => true,
            Party::Customer { org: own } => own == org,
        }
    }

    /// Decides whether `self` may add `new`. `None` as the actor means the store has no users
    /// yet, and then only a vendor admin may be created (the bootstrap).
    pub fn may_add(actor: Option<&User>, new: &User) -> Result<(), DomainError> {
        match actor {
            None if new.party == Party::Vendor && new.role == Role::Admin => Ok(()),
            None => Err(DomainError::Forbidden("the first user must be a vendor admin".into())),
            Some(a) if !a.is_admin() => {
                Err(DomainError::Forbidden(format!("{} is a member; only admins add users", a.email)))
            }
            Some(a) => match (&a.party, &new.party) {
                (Party::Vendor, _) => Ok(()),
                (Party::Customer { org }, Party::Customer { org: new_org }) if org == new_org => Ok(()),
                (Party::Customer { org }, _) => {
                    Err(DomainError::Forbidden(format!("a customer admin of {org} adds users of {org} only")))
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(party: Party, role: Role) -> User {
        User {
            email: Email::parse("x@y.no").unwrap(),
            name: Text::parse("X").unwrap(),
            party,
            role,
            created_at: OffsetDateTime::UNIX_EPOCH,
        }
    }
    fn acme() -> Party {
        Party::Customer { org: OrgName::parse("Acme").unwrap() }
    }
    fn other() -> Party {
        Party::Customer { org: OrgName::parse("Other").unwrap() }
    }

    #[test]
    fn customer_needs_org_and_vendor_has_none() {
        assert!(Party::new(PartyKind::Customer, None).is_err());
        assert!(Party::new(PartyKind::Vendor, Some(OrgName::parse("A").unwrap())).is_err());
        assert_eq!(Party::new(PartyKind::Vendor, None).unwrap(), Party::Vendor);
    }

    #[test]
    fn who_may_add_whom() {
        let va = user(Party::Vendor, Role::Admin);
        let vm = user(Party::Vendor, Role::Member);
        let ca = user(acme(), Role::Admin);
        let cm = user(acme(), Role::Member);
        assert!(User::may_add(None, &va).is_ok());
        assert!(User::may_add(None, &cm).is_err());
        assert!(User::may_add(None, &vm).is_err());
        assert!(User::may_add(Some(&va), &cm).is_ok());
        assert!(User::may_add(Some(&vm), &cm).is_err());
        assert!(User::may_add(Some(&ca), &cm).is_ok());
        assert!(User::may_add(Some(&ca), &user(other(), Role::Member)).is_err());
        assert!(User::may_add(Some(&ca), &vm).is_err());
        assert!(User::may_add(Some(&cm), &cm).is_err());
    }

    #[test]
    fn visibility() {
        let acme_org = OrgName::parse("Acme").unwrap();
        assert!(user(Party::Vendor, Role::Member).can_see_org(&acme_org));
        assert!(user(acme(), Role::Member).can_see_org(&acme_org));
        assert!(!user(other(), Role::Admin).can_see_org(&acme_org));
    }
}
