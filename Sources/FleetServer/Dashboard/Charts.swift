import Foundation
import KSMCore

/// Inline SVG charts, rendered on the server. Gaps are drawn as gaps: the line breaks and the
/// interval is shaded "no data", never joined or drawn as zero.
enum Charts {
    struct Point {
        var t: Double
        var v: Double
    }

    /// A "nice" upper bound for an axis: 1, 2, 2.5 or 5 × 10^k at or above `v`.
    static func niceMax(_ v: Double) -> Double {
        guard v > 0, v.isFinite else { return 1 }
        let exp = (log10(v)).rounded(.down)
        let base = pow(10, exp)
        for m in [1.0, 2, 2.5, 5, 10] where m * base >= v { return m * base }
        return 10 * base
    }

    /// A time-series line chart over [from, to). Consecutive points further apart than
    /// `maxStep` are not joined; `gaps` are shaded.
    static func line(
        id: String, title: String, points: [Point], gaps: [Interval], from: Double, to: Double, maxStep: Double,
        color: String = "#2563eb", unit: (Double) -> String, yMax: Double? = nil, binary: Bool = false
    ) -> String {
        let w = 760.0
        let h = 230.0
        let left = 74.0
        let right = 14.0
        let top = 14.0
        let bottom = 30.0
        let pw = w - left - right
        let ph = h - top - bottom
        let span = max(1, to - from)
        let top0 = (points.map(\.v).max() ?? 0) * 1.08
        // Byte axes step in whole KiB/MiB/GiB so the labels read 2 GiB, 4 GiB, not 2.33 GiB.
        var scale = 1.0
        if binary { while top0 / scale >= 1024 { scale *= 1024 } }
        // Four grid steps of a nice size each.
        let ymax = yMax ?? 4 * niceMax(top0 / scale / 4) * scale
        func x(_ t: Double) -> Double { left + (t - from) / span * pw }
        func y(_ v: Double) -> Double { top + ph - min(max(v / ymax, 0), 1) * ph }
        var svg =
            "<svg class=\"chart\" id=\"\(HTML.esc(id))\" viewBox=\"0 0 \(Int(w)) \(Int(h))\" role=\"img\" aria-label=\"\(HTML.esc(title))\">"
        // Gaps.
        for g in gaps {
            let a = x(max(g.from, from))
            let b = x(min(g.to, to))
            if b - a > 0.5 {
                svg += "<rect x=\"\(f(a))\" y=\"\(f(top))\" width=\"\(f(b - a))\" height=\"\(f(ph))\" fill=\"#fde2e2\" opacity=\"0.7\"><title>no data</title></rect>"
            }
        }
        // Grid and y labels.
        for i in 0...4 {
            let v = ymax * Double(i) / 4
            let yy = y(v)
            svg += "<line x1=\"\(f(left))\" x2=\"\(f(w - right))\" y1=\"\(f(yy))\" y2=\"\(f(yy))\" stroke=\"#e5e7eb\"/>"
            // No points, no scale: an empty chart's labels would read 0 to 4 B (or 0 to 4 %),
            // values nobody measured.
            if !points.isEmpty {
                svg += "<text x=\"\(f(left - 6))\" y=\"\(f(yy + 4))\" text-anchor=\"end\">\(HTML.esc(unit(v)))</text>"
            }
        }
        // X labels: on UTC midnights (every few days) for long spans, on whole hours otherwise.
        let step: Double
        if span > 3 * 86400 {
            step = 86400 * max(1, (span / 86400 / 7).rounded(.up))
        } else {
            step = 3600 * max(1, (span / 3600 / 7).rounded(.up))
        }
        var tick = (from / step).rounded(.up) * step
        while tick <= to {
            let label = span > 3 * 86400 ? String(ReportTime.dayKey(tick).dropFirst(5)) : String(ReportTime.iso(tick).dropFirst(11).prefix(5))
            let xx = x(tick)
            svg += "<line x1=\"\(f(xx))\" x2=\"\(f(xx))\" y1=\"\(f(top + ph))\" y2=\"\(f(top + ph + 4))\" stroke=\"#9ca3af\"/>"
            svg += "<text x=\"\(f(xx))\" y=\"\(f(h - 10))\" text-anchor=\"middle\">\(label)</text>"
            tick += step
        }
        // The points drawn, once for the line and its dots: a bucket that began before `from`
        // (an hour bucket of a period starting inside it, a node registered mid-hour) is drawn
        // at `from`; it was left out of the line but counted as a neighbour by the dots, so a
        // chart of two such buckets drew a lone "M" and nothing visible.
        let sorted = points.compactMap { p -> Point? in
            if p.t > to { return nil }
            if p.t < from { return p.t >= from - maxStep ? Point(t: from, v: p.v) : nil }
            return p
        }.sorted(by: { $0.t < $1.t })
        // The line, broken at gaps.
        var path = ""
        var prev: Double?
        for p in sorted {
            let cmd = (prev == nil || p.t - (prev ?? 0) > maxStep) ? "M" : "L"
            path += "\(cmd)\(f(x(p.t))),\(f(y(p.v)))"
            prev = p.t
        }
        if !path.isEmpty {
            svg += "<path d=\"\(path)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" stroke-linejoin=\"round\"/>"
        }
        // Lone points (no neighbour within maxStep) as dots so they are not invisible.
        for (i, p) in sorted.enumerated() {
            let near = (i > 0 && p.t - sorted[i - 1].t <= maxStep) || (i + 1 < sorted.count && sorted[i + 1].t - p.t <= maxStep)
            if !near { svg += "<circle cx=\"\(f(x(p.t)))\" cy=\"\(f(y(p.v)))\" r=\"2.5\" fill=\"\(color)\"/>" }
        }
        if points.isEmpty {
            svg += "<text x=\"\(f(left + pw / 2))\" y=\"\(f(top + ph / 2))\" text-anchor=\"middle\">no data in this period</text>"
        }
        svg += "<line x1=\"\(f(left))\" x2=\"\(f(left))\" y1=\"\(f(top))\" y2=\"\(f(top + ph))\" stroke=\"#9ca3af\"/>"
        svg += "<line x1=\"\(f(left))\" x2=\"\(f(w - right))\" y1=\"\(f(top + ph))\" y2=\"\(f(top + ph))\" stroke=\"#9ca3af\"/>"
        return svg + "</svg>"
    }

    /// A horizontal bar chart (label, value, text shown at the bar's end).
    static func bars(id: String, title: String, items: [(label: String, value: Double, text: String)], color: String = "#f59e0b")
        -> String
    {
        let rowH = 26.0
        let left = 170.0
        let w = 760.0
        let right = 90.0
        let h = max(60, Double(items.count) * rowH + 16)
        let vmax = niceMax(items.map(\.value).max() ?? 0)
        var svg =
            "<svg class=\"chart\" id=\"\(HTML.esc(id))\" viewBox=\"0 0 \(Int(w)) \(Int(h))\" role=\"img\" aria-label=\"\(HTML.esc(title))\">"
        if items.isEmpty {
            svg += "<text x=\"\(f(w / 2))\" y=\"34\" text-anchor=\"middle\">no ksmd CPU data in this period</text>"
        }
        for (i, it) in items.enumerated() {
            let y = 8 + Double(i) * rowH
            let bw = max(1, (w - left - right) * it.value / vmax)
            let name = it.label.count > 24 ? String(it.label.prefix(23)) + "…" : it.label
            svg += "<text x=\"\(f(left - 8))\" y=\"\(f(y + 15))\" text-anchor=\"end\"><title>\(HTML.esc(it.label))</title>\(HTML.esc(name))</text>"
            svg += "<rect x=\"\(f(left))\" y=\"\(f(y + 3))\" width=\"\(f(bw))\" height=\"\(f(rowH - 8))\" rx=\"3\" fill=\"\(color)\"/>"
            svg += "<text x=\"\(f(left + bw + 6))\" y=\"\(f(y + 15))\">\(HTML.esc(it.text))</text>"
        }
        return svg + "</svg>"
    }

    static func f(_ v: Double) -> String { ReportTime.decimal(v, places: 1) }
}
