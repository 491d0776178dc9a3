//! `cidr_contains(network, address)`: whether an address (or a network) lies
//! inside a CIDR network, IPv4 or IPv6 — `WHERE NOT cidr_contains('10.0.0.0/8',
//! address)` finds sockets listening beyond the private range.
//!
//! `address` may carry a prefix length itself (`interfaces.ipv6` does, e.g.
//! `fe80::1/64`): then the whole network must lie inside. A bare address in
//! `network` is a /32 or /128. NULL, an unparseable value or a mix of
//! families gives NULL or false as SQL would: NULL in, NULL out; garbage
//! gives NULL (one odd row must not fail a fleet-wide query); 10.0.0.1 is not
//! in an IPv6 network (false).

use std::net::IpAddr;
use std::sync::Arc;

use arrow_array::Array;
use arrow_array::builder::BooleanBuilder;
use arrow_array::cast::AsArray;
use arrow_schema::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};
use ipnet::IpNet;

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CidrContains {
    signature: Signature,
}

/// Registers `cidr_contains` on `ctx`.
pub fn register(ctx: &datafusion::prelude::SessionContext) {
    ctx.register_udf(datafusion::logical_expr::ScalarUDF::from(CidrContains::default()));
}

impl Default for CidrContains {
    fn default() -> Self {
        CidrContains { signature: Signature::one_of(vec![TypeSignature::String(2)], Volatility::Immutable) }
    }
}

/// A network or a bare address (as its single-address network).
fn net(s: &str) -> Option<IpNet> {
    let s = s.trim();
    // IPv6 addresses of a zone (fe80::1%eth0) name the same address.
    let s = match s.split_once('%') {
        Some((addr, rest)) => match rest.split_once('/') {
            Some((_, len)) => return format!("{addr}/{len}").parse().ok(),
            None => addr,
        },
        None => s,
    };
    s.parse::<IpNet>().ok().or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

/// Whether `inner` lies inside `outer`; None when either is not an address.
pub fn contains(outer: &str, inner: &str) -> Option<bool> {
    let (outer, inner) = (net(outer)?, net(inner)?);
    Some(outer.contains(&inner))
}

impl ScalarUDFImpl for CidrContains {
    fn name(&self) -> &str {
        "cidr_contains"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [network, address] = datafusion::common::utils::take_function_args(self.name(), &args.args)?;
        let arrays = ColumnarValue::values_to_arrays(&[network.clone(), address.clone()])?;
        let (n, a) = (super::args::to_utf8(&arrays[0])?, super::args::to_utf8(&arrays[1])?);
        let (n, a) = (n.as_string::<i32>(), a.as_string::<i32>());
        // The network is usually one literal: parse it once.
        let fixed =
            (n.len() > 0 && matches!(network, ColumnarValue::Scalar(_)) && n.is_valid(0)).then(|| net(n.value(0)));
        let mut out = BooleanBuilder::with_capacity(a.len());
        for i in 0..a.len() {
            if n.is_null(i) || a.is_null(i) {
                out.append_null();
                continue;
            }
            let outer = match &fixed {
                Some(f) => *f,
                None => net(n.value(i)),
            };
            out.append_option(outer.zip(net(a.value(i))).map(|(o, x)| o.contains(&x)));
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

#[cfg(test)]
mod tests {

    async fn one(sql: &str) -> String {
        super::super::args::first_value(super::register, sql).await
    }

    #[test]
    fn addresses_and_networks_of_both_families() {
        let cases: &[(&str, &str, Option<bool>)] = &[
            ("10.0.0.0/8", "10.1.2.3", Some(true)),
            ("10.0.0.0/8", "11.0.0.1", Some(false)),
            ("10.0.0.0/8", "10.1.0.0/16", Some(true)),
            ("10.1.0.0/16", "10.0.0.0/8", Some(false)),
            ("0.0.0.0/0", "192.168.1.1", Some(true)),
            ("192.168.1.1", "192.168.1.1", Some(true)),
            ("fe80::/10", "fe80::1/64", Some(true)),
            ("fe80::/10", "fe80::1%eth0", Some(true)),
            ("::/0", "10.0.0.1", Some(false)),
            ("10.0.0.0/8", "not an address", None),
            ("10.0.0.0/33", "10.0.0.1", None),
        ];
        for (n, a, want) in cases {
            assert_eq!(super::contains(n, a), *want, "{n} contains {a}");
        }
    }

    #[tokio::test]
    async fn scalars_arrays_and_nulls() {
        assert_eq!(one("SELECT cidr_contains('172.16.0.0/12', '172.20.0.5')").await, "true");
        assert_eq!(one("SELECT cidr_contains(NULL, '10.0.0.1')").await, "");
        assert_eq!(one("SELECT cidr_contains('10.0.0.0/8', NULL)").await, "");
        let n = one("SELECT count(*) FROM (VALUES ('10.0.0.0/8', '10.9.9.9'), ('10.0.0.0/8', '8.8.8.8'), \
             ('2001:db8::/32', '2001:db8::1'), ('10.0.0.0/8', 'junk')) t(n, a) WHERE cidr_contains(n, a)")
        .await;
        assert_eq!(n, "2");
        let n = one("SELECT count(*) FROM (VALUES ('0.0.0.0'), ('127.0.0.1'), ('10.2.3.4')) t(a) \
             WHERE NOT cidr_contains('127.0.0.0/8', a)")
        .await;
        assert_eq!(n, "2");
    }
}
