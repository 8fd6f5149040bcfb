import FleetAPI
import Foundation
import HTTPTypes
import Hummingbird
import KSMCore
import Testing

@testable import FleetServer

/// The two pieces of the sample push path written by hand for speed, against what they replace.
@Suite struct BearerAndAckTests {
    func request(authorization: String?) -> Request {
        var head = HTTPRequest(method: .get, scheme: "http", authority: "x", path: "/")
        if let authorization { head.headerFields[.authorization] = authorization }
        return Request(head: head, body: .init(buffer: .init()))
    }

    @Test(arguments: [
        ("Bearer kn_abc", "kn_abc"), ("bearer kn_abc", "kn_abc"), ("BEARER kn_abc", "kn_abc"),
        ("Bearer   kn_abc  ", "kn_abc"), ("Bearer \tkn_abc\t", "kn_abc"), ("Bearer kn a b", "kn a b"),
        ("Bearer ", nil), ("Bearer    ", nil), ("Bearer", nil), ("Basic a2Vy", nil), ("Bearerx kn", nil),
        ("Token kn_abc", nil), ("", nil), ("kn_abc", nil), ("Beare kn_abc", nil),
    ] as [(String, String?)])
    func bearerTokens(header: String, token: String?) {
        #expect(Auth.bearer(request(authorization: header)) == token)
    }

    @Test func noHeaderNoToken() {
        #expect(Auth.bearer(request(authorization: nil)) == nil)
    }

    @Test(arguments: [
        SampleBatchAck(highestSeq: -1, stored: 0, duplicates: 0),
        SampleBatchAck(highestSeq: 41, stored: 3, duplicates: 7),
        SampleBatchAck(highestSeq: Int64.max, stored: 1000, duplicates: Int.max),
    ])
    func ackJSONIsWhatTheEncoderWrites(ack: SampleBatchAck) throws {
        let encoded = String(decoding: try StrictJSON.encoder().encode(ack), as: UTF8.self)
        #expect(ack.json == encoded)
        #expect(try StrictJSON.decoder().decode(SampleBatchAck.self, from: Data(ack.json.utf8)) == ack)
    }
}
