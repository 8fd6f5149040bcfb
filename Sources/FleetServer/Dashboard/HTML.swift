import FleetAPI
import Foundation
import KSMCore

/// Small helpers for server-rendered HTML: every text that came from outside goes through `esc`.
enum HTML {
    /// Escapes text for element content and quoted attribute values.
    static func esc(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    /// Percent-encodes a query value.
    static func q(_ s: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return s.addingPercentEncoding(withAllowedCharacters: allowed) ?? ""
    }

    static func bytes(_ v: Double?) -> String {
        guard let v else { return "—" }
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
        var x = v
        var i = 0
        while abs(x) >= 1024 && i < units.count - 1 {
            x /= 1024
            i += 1
        }
        return ReportTime.decimal(x, places: i == 0 ? 0 : (abs(x) < 10 ? 2 : 1)) + " " + units[i]
    }

    static func bytes(_ v: Int64?) -> String { bytes(v.map(Double.init)) }

    static func percent(_ v: Double?, places: Int = 1) -> String {
        guard let v else { return "—" }
        return ReportTime.decimal(v, places: places) + " %"
    }

    static func num(_ v: Double?, places: Int = 2) -> String {
        guard let v else { return "—" }
        return ReportTime.decimal(v, places: places)
    }

    static func int(_ v: Int64?) -> String {
        guard let v else { return "—" }
        // Thousands separated by thin spaces for readability.
        let s = String(abs(v))
        var out = ""
        for (i, c) in s.enumerated() {
            if i > 0 && (s.count - i) % 3 == 0 { out += "\u{2009}" }
            out.append(c)
        }
        return (v < 0 ? "-" : "") + out
    }

    static func time(_ d: Date?) -> String {
        guard let d else { return "never" }
        let s = ReportTime.iso(d.timeIntervalSince1970)
        return String(s.prefix(16)).replacingOccurrences(of: "T", with: " ") + " UTC"
    }

    /// "3 min ago", "2 h ago", for last-seen times.
    static func ago(_ d: Date?, now: Date) -> String {
        guard let d else { return "never" }
        let s = max(0, now.timeIntervalSince(d))
        if s < 90 { return "\(Int(s)) s ago" }
        if s < 5400 { return "\(Int(s / 60)) min ago" }
        if s < 172_800 { return "\(Int(s / 3600)) h ago" }
        return "\(Int(s / 86400)) d ago"
    }

    static func badge(_ text: String, _ kind: String) -> String {
        "<span class=\"badge \(kind)\">\(esc(text))</span>"
    }

    static func phaseBadge(_ p: KSMPhase?) -> String {
        guard let p else { return badge("unknown", "muted") }
        switch p {
        case .running: return badge(p.rawValue, "ok")
        case .stopped: return badge(p.rawValue, "muted")
        case .pruned: return badge(p.rawValue, "warn")
        case .unmanaged: return badge(p.rawValue, "info")
        }
    }

    static let css = """
        :root{--bg:#f5f6f8;--fg:#1d2330;--muted:#6b7385;--card:#fff;--line:#dde1e8;--accent:#2563eb;--ok:#15803d;--warn:#b45309;--bad:#b91c1c;--info:#6d28d9}
        *{box-sizing:border-box}
        body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;background:var(--bg);color:var(--fg)}
        header.top{background:#111827;color:#fff;display:flex;align-items:center;gap:24px;padding:0 24px;height:52px}
        header.top .brand{font-weight:700;letter-spacing:.3px}
        header.top nav a{color:#cbd5e1;text-decoration:none;margin-right:18px;padding:16px 0}
        header.top nav a.active,header.top nav a:hover{color:#fff;border-bottom:2px solid #60a5fa}
        header.top form{margin-left:auto}
        header.top button{background:transparent;color:#cbd5e1;border:1px solid #475569;border-radius:6px;padding:5px 12px;cursor:pointer}
        main{max-width:1440px;margin:0 auto;padding:20px 24px 48px}
        h1{font-size:22px;margin:4px 0 16px}
        h2{font-size:16px;margin:0 0 12px}
        .cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(190px,1fr));gap:14px;margin-bottom:18px}
        .card,.panel{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:14px 16px}
        .card .label{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.4px}
        .card .value{font-size:24px;font-weight:650;margin-top:4px}
        .card .sub{color:var(--muted);font-size:12px;margin-top:2px}
        .grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:16px;margin-bottom:16px}
        .panel{margin-bottom:16px;overflow-x:auto}
        table{border-collapse:collapse;width:100%}
        th,td{text-align:left;padding:7px 10px;border-bottom:1px solid var(--line);white-space:nowrap}
        th{font-size:12px;color:var(--muted);text-transform:uppercase;letter-spacing:.3px;font-weight:600}
        th a{color:inherit;text-decoration:none}
        td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
        tr:hover td{background:#f8fafc}
        tr.total td{font-weight:650;border-top:2px solid var(--line)}
        a{color:var(--accent)}
        .badge{display:inline-block;padding:1px 8px;border-radius:999px;font-size:12px;font-weight:600;border:1px solid}
        .badge.ok{color:var(--ok);border-color:#86efac;background:#f0fdf4}
        .badge.muted{color:var(--muted);border-color:var(--line);background:#f8fafc}
        .badge.warn{color:var(--warn);border-color:#fcd34d;background:#fffbeb}
        .badge.bad{color:var(--bad);border-color:#fca5a5;background:#fef2f2}
        .badge.info{color:var(--info);border-color:#c4b5fd;background:#f5f3ff}
        .muted{color:var(--muted)}
        .filters{display:flex;flex-wrap:wrap;gap:10px;align-items:end;margin-bottom:12px}
        .filters label,.form label{display:flex;flex-direction:column;font-size:12px;color:var(--muted);gap:3px}
        input,select{font:inherit;padding:6px 8px;border:1px solid #c7ccd6;border-radius:6px;background:#fff;color:var(--fg)}
        input[readonly]{background:#f1f3f6;color:var(--muted)}
        button.primary,a.button{background:var(--accent);color:#fff;border:0;border-radius:6px;padding:7px 14px;font:inherit;cursor:pointer;text-decoration:none;display:inline-block}
        button.secondary{background:#fff;color:var(--fg);border:1px solid #c7ccd6;border-radius:6px;padding:7px 14px;font:inherit;cursor:pointer}
        .form{display:grid;grid-template-columns:repeat(auto-fill,minmax(190px,1fr));gap:12px 16px;margin-bottom:12px}
        .form input,.form select{width:100%}
        td.wrap{white-space:normal;min-width:160px;max-width:340px}
        .filters a{align-self:center}
        .field-error{color:var(--bad);font-size:12px}
        .has-error input,.has-error select{border-color:var(--bad);background:#fef2f2}
        .flash{padding:10px 14px;border-radius:8px;margin-bottom:14px}
        .flash.ok{background:#f0fdf4;border:1px solid #86efac}
        .flash.bad{background:#fef2f2;border:1px solid #fca5a5}
        .note{background:#f8fafc;border-left:4px solid #94a3b8;padding:8px 12px;color:#334155;font-size:13px;margin:10px 0}
        dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:4px 14px;margin:0}
        dl.kv dt{color:var(--muted)}
        dl.kv dd{margin:0;font-variant-numeric:tabular-nums}
        svg.chart{width:100%;height:auto;display:block}
        svg.chart text{font:11px system-ui,sans-serif;fill:#6b7385}
        .login{max-width:420px;margin:12vh auto;background:#fff;border:1px solid var(--line);border-radius:12px;padding:26px}
        .login input{width:100%;margin:6px 0 14px}
        .legend{font-size:12px;color:var(--muted);margin-top:4px}
        .swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin:0 4px 0 10px;vertical-align:middle}
        @media (max-width:700px){.grid2{grid-template-columns:1fr}main{padding:12px}}
        """

    /// The page frame: top bar with navigation and logout (a CSRF-protected form).
    static func page(title: String, active: String, csrf: String?, nonce: String, body: String, script: String = "") -> String {
        let links = [("/", "Overview", "overview"), ("/nodes", "Nodes", "nodes"), ("/reports", "Savings report", "reports")]
        let nav = links.map { "<a href=\"\($0.0)\"\($0.2 == active ? " class=\"active\"" : "")>\($0.1)</a>" }.joined()
        let logout =
            csrf.map {
                "<form method=\"post\" action=\"/logout\"><input type=\"hidden\" name=\"csrf\" value=\"\(esc($0))\"><button type=\"submit\">Log out</button></form>"
            } ?? ""
        return """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
            <title>\(esc(title)) · ksmfleet</title><style>\(css)</style></head>
            <body><header class="top"><span class="brand">ksmfleet</span>\(csrf == nil ? "" : "<nav>\(nav)</nav>")\(logout)</header>
            <main>\(body)</main>\(script.isEmpty ? "" : "<script nonce=\"\(nonce)\">\(script)</script>")</body></html>
            """
    }
}
