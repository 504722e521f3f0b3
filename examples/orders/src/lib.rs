//! Order pricing: the part of the example service worth unit-testing.

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Article number.
    pub sku: &'static str,
    /// How many.
    pub quantity: u32,
    /// Price of one, in cents.
    pub unit_cents: u64,
}

/// An order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// Its number.
    pub id: u32,
    /// What was ordered.
    pub lines: Vec<Line>,
}

/// Orders of 10,000 cents or more get this discount, in percent.
pub const BULK_DISCOUNT_PERCENT: u64 = 5;

/// The order's total in cents: the sum of its lines, less the bulk discount (rounded
/// down to whole cents) when the sum reaches 10,000 cents.
pub fn total_cents(order: &Order) -> u64 {
    let sum: u64 = order
        .lines
        .iter()
        .map(|l| u64::from(l.quantity) * l.unit_cents)
        .sum();
    if sum >= 10_000 {
        sum - sum * BULK_DISCOUNT_PERCENT / 100
    } else {
        sum
    }
}

/// `1234` cents as `"12.34"`.
pub fn format_cents(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// The sample orders the service serves.
pub fn sample_orders() -> Vec<Order> {
    vec![
        Order {
            id: 1,
            lines: vec![Line {
                sku: "coffee-beans-1kg",
                quantity: 2,
                unit_cents: 1_890,
            }],
        },
        Order {
            id: 2,
            lines: vec![
                Line {
                    sku: "espresso-machine",
                    quantity: 1,
                    unit_cents: 24_900,
                },
                Line {
                    sku: "milk-jug",
                    quantity: 1,
                    unit_cents: 1_250,
                },
            ],
        },
    ]
}

/// The orders as JSON, with their totals.
pub fn orders_json(orders: &[Order]) -> String {
    let items: Vec<String> = orders
        .iter()
        .map(|o| {
            format!(
                "{{\"id\":{},\"lines\":{},\"total\":\"{}\"}}",
                o.id,
                o.lines.len(),
                format_cents(total_cents(o))
            )
        })
        .collect();
    format!("[{}]", items.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_orders_pay_the_sum_of_their_lines() {
        assert_eq!(total_cents(&sample_orders()[0]), 3_780);
    }

    #[test]
    fn bulk_orders_get_the_discount_rounded_down() {
        // 24,900 + 1,250 = 26,150; 5 % off = 1,307.5 → 24,843 (a cent never goes up).
        assert_eq!(total_cents(&sample_orders()[1]), 24_843);
    }

    #[test]
    fn the_discount_starts_at_exactly_ten_thousand_cents() {
        let order = |cents| Order {
            id: 9,
            lines: vec![Line {
                sku: "x",
                quantity: 1,
                unit_cents: cents,
            }],
        };
        assert_eq!(total_cents(&order(9_999)), 9_999);
        assert_eq!(total_cents(&order(10_000)), 9_500);
    }

    #[test]
    fn cents_format_with_two_digits() {
        assert_eq!(format_cents(5), "0.05");
        assert_eq!(format_cents(24_843), "248.43");
    }

    #[test]
    fn orders_serialise_with_totals() {
        assert_eq!(
            orders_json(&sample_orders()),
            r#"[{"id":1,"lines":1,"total":"37.80"},{"id":2,"lines":2,"total":"248.43"}]"#
        );
    }
}
