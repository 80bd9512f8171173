import TollgateCore
import TollgateRedis

/// The rows `tollgate spend` prints. Each form is built once as CSV-shaped columns (exact
/// nano-USD and USD text side by side); the table is the same rows made readable.
enum SpendTable {
    static let clientColumns = ["client", "date", "day_spent_usd", "reserved_usd", "day_limit_usd", "left_today_usd",
                                "requests", "refused", "month_spent_usd", "month_limit_usd"]

    static func clientRow(_ r: BudgetAdmin.ClientSpend, date: String) -> [String] {
        [r.client.rawValue, date, r.day.spent.usdString, r.day.reserved.usdString, r.day.limit.usdString, r.day.remaining.usdString,
         String(r.day.requests), String(r.day.refused), r.month.spent.usdString, r.month.limit.usdString]
    }

    /// Spend per model over the days, highest first. Spend no model field accounts for (charged
    /// by lease reaping, or recorded before per-model counters existed) gets a row of its own.
    static func byModel(_ days: [DaySpend]) -> (header: [String], rows: [[String]]) {
        var total = SpendCounters()
        for day in days { total += day.counters }
        var rows = total.modelsBySpend.map { [$0.model, String($0.spent.value), $0.spent.usdString, share($0.spent, total.spent)] }
        let attributed = total.models.values.reduce(NanoUSD.zero, +)
        if total.spent > attributed {
            let rest = total.spent - attributed
            rows.append(["(not by model)", String(rest.value), rest.usdString, share(rest, total.spent)])
        }
        return (["model", "spent_nano_usd", "spent_usd", "share_percent"], rows)
    }

    static func byDay(_ days: [DaySpend]) -> (header: [String], rows: [[String]]) {
        let rows = days.map { d in
            let c = d.counters
            return [d.date, String(c.spent.value), c.spent.usdString, String(c.requests), String(c.refused), String(c.downgrades), String(c.loopTrips)]
        }
        return (["date", "spent_nano_usd", "spent_usd", "requests", "refused", "downgrades", "loop_trips"], rows)
    }

    static func share(_ part: NanoUSD, _ whole: NanoUSD) -> String { NanoUSD.formatDecimal(permille(part, of: whole), scale: 1) }

    static func json(_ r: BudgetAdmin.ClientSpend) -> JSONValue {
        func p(_ s: BudgetAdmin.PeriodSpend) -> JSONValue {
            .object([("period", .string(s.period)), ("spent_usd", .number(s.spent.usdString)), ("reserved_usd", .number(s.reserved.usdString)),
                     ("requests", .number(String(s.requests))), ("refused", .number(String(s.refused))), ("limit_usd", .number(s.limit.usdString)),
                     ("remaining_usd", .number(s.remaining.usdString)), ("resets_at", .string(s.resetsAt.rfc3339))])
        }
        return .object([("client_id", .string(r.client.rawValue)), ("day", p(r.day)), ("month", p(r.month))])
    }
}

/// Comma-separated values as RFC 4180 has them: a header row, then one line per row; a field is
/// quoted when it holds a comma, a quote or a line break (model names are text clients choose).
enum CSV {
    static func render(_ header: [String], _ rows: [[String]]) -> String {
        ([header] + rows).map { $0.map(field).joined(separator: ",") + "\n" }.joined()
    }

    static func field(_ value: String) -> String {
        guard value.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return value }
        return "\"" + value.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}

/// CSV-shaped rows as an aligned text table: nano-USD columns and `dropping` are left out, USD
/// columns get a `$`, percentages a `%`; the first column is left-aligned, the rest right-aligned.
enum TextTable {
    static func readable(_ header: [String], _ rows: [[String]], dropping: Set<String> = []) -> String {
        let kept = header.indices.filter { !header[$0].hasSuffix("_nano_usd") && !dropping.contains(header[$0]) }
        func cell(_ row: [String], _ i: Int) -> String {
            header[i].hasSuffix("_usd") ? "$" + row[i] : header[i].hasSuffix("_percent") ? row[i] + "%" : row[i]
        }
        func title(_ name: String) -> String {
            var words = name.split(separator: "_").map(String.init)
            if let last = words.last, ["usd", "percent"].contains(last) { words.removeLast() }
            return words.joined(separator: " ").uppercased()
        }
        let table = [kept.map { title(header[$0]) }] + rows.map { row in kept.map { cell(row, $0) } }
        let widths = kept.indices.map { k in table.map { $0[k].count }.max() ?? 0 }
        return table.map { cells in
            cells.enumerated().map { k, c in
                k == 0 ? c.padding(toLength: widths[k], withPad: " ", startingAt: 0) : String(repeating: " ", count: widths[k] - c.count) + c
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }
}
