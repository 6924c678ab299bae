//! Closed vocabularies stored as short lowercase codes (`"no_show"`), one macro for all of them.

/// A closed vocabulary: every variant has one stable storage code.
pub trait Coded: Sized + Copy + 'static {
    const KIND: &'static str;
    const ALL: &'static [Self];
    fn code(self) -> &'static str;
    fn from_code(code: &str) -> Result<Self, super::DomainError> {
        Self::ALL
            .iter()
            .copied()
            .find(|v| v.code() == code)
            .ok_or_else(|| super::DomainError::UnknownCode {
                kind: Self::KIND,
                code: code.to_owned(),
            })
    }
}

/// Declares a `Coded` enum: `code_enum! { pub enum Gender { Male => "male", ... } }`.
macro_rules! code_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$vmeta:meta])* $variant:ident => $code:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// The stable storage code.
            pub const fn code(self) -> &'static str {
                match self { $($name::$variant => $code),+ }
            }
        }

        impl $crate::domain::Coded for $name {
            const KIND: &'static str = stringify!($name);
            const ALL: &'static [Self] = &[$($name::$variant),+];
            fn code(self) -> &'static str {
                $name::code(self)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.code())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::domain::DomainError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                <Self as $crate::domain::Coded>::from_code(s)
            }
        }
    };
}
