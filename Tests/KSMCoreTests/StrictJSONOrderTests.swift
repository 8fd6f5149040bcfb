import Foundation
import KSMCore
import Testing

/// A body with several bad values gets the same error every time: an object's keys are decoded
/// in a fixed order, not in the order of a dictionary (which changes from one decoding to the next).
@Suite struct StrictJSONOrderTests {
    @Test func twoBadValuesGiveOneErrorEveryTime() throws {
        var errors: Set<String> = []
        for i in 0..<40 {
            // A malformed number and a string with a byte that is not UTF-8, among other keys.
            var bytes = Array(#"{"a\#(i)":1,"pagesUnshared":-922337203685477-808,"#.utf8)
            bytes += Array(#""mode":"x"#.utf8) + [0xC3, 0xFF] + Array(#"","z":2,"y":[1,2],"w":{"v":null}}"#.utf8)
            do {
                _ = try StrictJSON.decoder().decode(JSONValue.self, from: Data(bytes))
                Issue.record("decoded a body with two bad values")
            } catch {
                errors.insert("\(error)".replacingOccurrences(of: "a\(i)", with: "a"))
            }
        }
        #expect(errors.count == 1, "\(errors)")
    }
}
