import Foundation
import Testing

@testable import KSMCore

/// `StrictJSON`'s second decoder names the field Foundation does not, and never traps or
/// recurses for ever on a type it does not name.
@Suite struct JSONValueDecoderTests {
    struct Small: Decodable, KnownFields {
        var s: Int16
        var f: Float
        var n: Int
        static let fieldNames: Set<String> = ["s", "f", "n"]
    }

    /// Decodes itself from its own single value: a primitive-like type the decoder does not name.
    struct SelfSingle: Decodable {
        init(from decoder: any Decoder) throws { _ = try decoder.singleValueContainer().decode(SelfSingle.self) }
    }

    @Test func fieldsAreNamedForEveryIntegerAndFloatType() throws {
        for (body, field) in [(#"{"s":1,"f":1.5,"n":1.5}"#, "n"), (#"{"s":40000,"f":1,"n":1}"#, "s"), (#"{"s":1.5,"f":1,"n":1}"#, "s")] {
            let refused = #expect(throws: InputError.self) { try StrictJSON.decode(Small.self, from: Data(body.utf8)) }
            #expect(refused?.code == "invalid_value" && refused?.field == field, "\(body): \(String(describing: refused))")
        }
        let ok = try StrictJSON.decode(Small.self, from: Data(#"{"s":-3,"f":0.25,"n":7}"#.utf8))
        #expect(ok.s == -3 && ok.f == 0.25 && ok.n == 7)
    }

    @Test func aTypeDecodingItselfIsRefusedNotRecursedInto() {
        #expect(throws: DecodingError.self) {
            try JSONValueDecoder.decode(SelfSingle.self, .int(1), path: [])
        }
    }
}
