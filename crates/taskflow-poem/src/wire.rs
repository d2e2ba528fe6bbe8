//! [`Wire`]: core's text enums ([`TaskStatus`](taskflow_core::model::TaskStatus),
//! [`Priority`](taskflow_core::model::Priority), …) as OpenAPI types. The spellings, the type
//! name and its description all come from core's [`StringEnum`], so they live in one place; the
//! schema is a named string enum that every field refers to with a plain `$ref`.

use std::borrow::Cow;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{
    ParseError, ParseFromJSON, ParseFromParameter, ParseResult, ToJSON, Type,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use taskflow_core::model::StringEnum;

/// A core text enum on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wire<T>(pub T);

impl<T> From<T> for Wire<T> {
    fn from(value: T) -> Self {
        Wire(value)
    }
}

impl<T: StringEnum> Type for Wire<T> {
    const IS_REQUIRED: bool = true;

    type RawValueType = T;

    type RawElementValueType = T;

    fn name() -> Cow<'static, str> {
        Cow::Borrowed(T::NAME)
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Reference(T::NAME.to_owned())
    }

    fn register(registry: &mut Registry) {
        registry.create_schema::<Self, _>(T::NAME.to_owned(), |_| MetaSchema {
            description: Some(T::DESCRIPTION),
            enum_items: T::NAMES.iter().map(|n| Value::from(*n)).collect(),
            ..MetaSchema::new("string")
        });
    }

    fn as_raw_value(&self) -> Option<&T> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a T> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

fn parse<T: StringEnum>(text: &str) -> Option<T> {
    T::ALL.iter().copied().find(|v| v.as_str() == text)
}

impl<T: StringEnum> ParseFromJSON for Wire<T> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        let value = value.unwrap_or_default();
        match value.as_str().and_then(parse) {
            Some(v) => Ok(Wire(v)),
            None => Err(ParseError::expected_type(value)),
        }
    }
}

impl<T: StringEnum> ParseFromParameter for Wire<T> {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        parse(value)
            .map(Wire)
            .ok_or_else(|| ParseError::custom("Expect a valid enumeration value."))
    }
}

impl<T: StringEnum> ToJSON for Wire<T> {
    fn to_json(&self) -> Option<Value> {
        Some(Value::from(self.0.as_str()))
    }
}

/// The same text as [`ToJSON`] gives, for bodies written with serde (`crate::body::SerdeJson`).
impl<T: StringEnum> Serialize for Wire<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.as_str())
    }
}

impl<'de, T: StringEnum + DeserializeOwned> Deserialize<'de> for Wire<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(Wire)
    }
}
