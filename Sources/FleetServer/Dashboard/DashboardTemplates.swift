import Foundation
import Mustache

/// The dashboard's Mustache templates (Dashboard/Templates/*.mustache), compiled into the binary
/// by SwiftPM's `.embedInCode` resource rule, so the server needs no template files at run time.
/// Mustache HTML-escapes every `{{value}}`; `{{{raw}}}` appears only for the SVG charts, which
/// `Charts` builds and escapes itself.
///
/// Extending a page: add a field to its data struct and use it in its template. Mustache looks a
/// name up in the current section's value, then in the enclosing ones (the page, the frame), and
/// a nil optional counts as "not here": so an optional field of a row or form field must not share
/// its name with a field of the page around it, or a nil would show the page's value instead.
struct DashboardTemplates: Sendable {
    /// A template that did not parse, or a page template name that is not registered.
    struct TemplateError: Error, CustomStringConvertible {
        var description: String
    }

    /// Every template by the name pages and partials use (`{{>badge}}`, `{{<layout}}`).
    /// A new .mustache file in Templates/ is embedded automatically but needs a line here.
    static let sources: [(name: String, bytes: [UInt8])] = [
        ("layout", PackageResources.layout_mustache),
        ("style", PackageResources.style_mustache),
        ("badge", PackageResources.badge_mustache),
        ("option", PackageResources.option_mustache),
        ("field-error", PackageResources.field_error_mustache),
        ("login", PackageResources.login_mustache),
        ("refused", PackageResources.refused_mustache),
        ("not-found", PackageResources.not_found_mustache),
        ("overview", PackageResources.overview_mustache),
        ("nodes", PackageResources.nodes_mustache),
        ("node", PackageResources.node_mustache),
        ("report-row", PackageResources.report_row_mustache),
        ("reports", PackageResources.reports_mustache),
    ]

    let library: MustacheLibrary

    /// Parses every embedded template; throws on the first one that does not parse.
    init() throws {
        var library = MustacheLibrary()
        for source in Self.sources {
            // A template file ends with a newline; the page or partial does not.
            var text = String(decoding: source.bytes, as: UTF8.self)
            if text.hasSuffix("\n") { text.removeLast() }
            do {
                library.register(try MustacheTemplate(string: text), named: source.name)
            } catch {
                throw TemplateError(description: "dashboard template '\(source.name)' does not parse: \(error)")
            }
        }
        self.library = library
    }

    /// The page `template` with its layout frame and data.
    func render<Page: Sendable>(_ template: String, frame: PageFrame, page: Page) throws -> String {
        guard let html = library.render(DashboardView(frame: frame, page: page), withTemplate: template) else {
            throw TemplateError(description: "no dashboard template named '\(template)'")
        }
        return html
    }
}
