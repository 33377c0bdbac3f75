//! Identifier newtypes, so a branch id cannot be passed where a project id is expected.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! string_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps an id as the API spells it.
            pub fn new(id: impl Into<String>) -> Self {
                $name(id.into())
            }

            /// The id as the API spells it.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                $name(id.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                $name(id)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// A project id such as `shiny-wind-028834`.
    ProjectId
);
string_id!(
    /// A branch id such as `br-aged-salad-637688`.
    BranchId
);
string_id!(
    /// A compute endpoint id such as `ep-little-smoke-851426`.
    EndpointId
);
string_id!(
    /// An operation id (a UUID).
    OperationId
);

/// An API key id (an integer in the API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ApiKeyId(pub i64);

impl fmt::Display for ApiKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_serialize_as_plain_strings() {
        let id = BranchId::from("br-aged-salad-637688");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"br-aged-salad-637688\"");
        let back: BranchId = serde_json::from_str("\"br-x\"").unwrap();
        assert_eq!(back.as_str(), "br-x");
        assert_eq!(serde_json::to_string(&ApiKeyId(7)).unwrap(), "7");
    }
}
