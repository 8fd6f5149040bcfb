import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes

extension APIError {
    /// What a request NIO's HTTP parser refused gets: 400 `bad_request`, the part of the request
    /// at fault as the field where one can be named. One place for both ways such an error
    /// reaches the server: before the request has a head (`HTTPParseErrorHandler`) and in a body
    /// a route reads (`ErrorMiddleware`).
    static func httpParse(_ e: HTTPParserError) -> APIError {
        let (field, what): (String?, String) =
            switch e {
            case .invalidContentLength: ("Content-Length", "Content-Length is not a length in bytes")
            case .unexpectedContentLength:
                ("Transfer-Encoding", "the request has both Content-Length and Transfer-Encoding: send one")
            case .headerOverflow:
                ("headers", "the request's header is over the server's limits (80 KiB, 1,000 lines)")
            case .invalidChunkSize: ("body", "a chunk size of the chunked body is not a hexadecimal number")
            case .invalidMethod: ("method", "the request line's method is not valid")
            case .invalidURL, .invalidPath, .invalidQueryString, .invalidFragment, .invalidHost, .invalidPort:
                ("target", "the request line's target is not a valid URL")
            case .invalidVersion: ("version", "the request line's HTTP version is not valid")
            case .invalidHeaderToken: ("headers", "a header line is not valid")
            default: (nil, "the request is not valid HTTP/1.1")
            }
        return APIError(.badRequest, code: "bad_request", message: "\(what) (\(e))", field: field)
    }
}

/// Answers a request that NIO's HTTP parser refused before it became a request (a
/// `Content-Length` that is not a number, both `Content-Length` and `Transfer-Encoding`, header
/// lines over the limit, bytes that are not HTTP) with the API's JSON error, 400, and closes the
/// connection, as HTTP/1.1 must: what follows the bad bytes cannot be framed. Hummingbird
/// answered these itself with a 400 and an empty body (they never reach a route or middleware).
///
/// An error inside a body that is still coming in goes on to Hummingbird, which throws it in the
/// route reading it, and `ErrorMiddleware` answers it (`APIError.httpParse`). One in bytes after
/// whole requests still being answered (pipelined) is answered after their responses, never in
/// the middle of one.
final class HTTPParseErrorHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let logger: Logger
    /// Requests whose head came in and whose response has not ended.
    private var unanswered = 0
    /// A request's head came in and its end has not.
    private var receiving = false
    /// The parser's error, to be answered once the requests before it are.
    private var pending: HTTPParserError?
    private var refused = false
    /// A request asked to close the connection after its response: nothing is written after
    /// that response (Hummingbird closes the connection).
    private var closing = false

    init(logger: Logger) { self.logger = logger }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let request):
            unanswered += 1
            receiving = true
            // Hummingbird's own test: it ends the connection after the response for exactly this.
            if request.headerFields[.connection] == "close" { closing = true }
        case .end: receiving = false
        case .body: break
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard case .end = unwrapOutboundIn(data) else {
            context.write(data, promise: promise)
            return
        }
        unanswered = max(0, unanswered - 1)
        context.write(data, promise: promise)
        if unanswered == 0, let parse = pending {
            pending = nil
            refuse(parse, context: context)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parse = error as? HTTPParserError, !receiving else {
            context.fireErrorCaught(error)
            return
        }
        if unanswered > 0 {
            if pending == nil, !refused { pending = parse }
        } else {
            refuse(parse, context: context)
        }
    }

    private func refuse(_ parse: HTTPParserError, context: ChannelHandlerContext) {
        // The parser says it once; anything after is not read. Nothing is written after a
        // response that said the connection closes, nor to a connection already gone (bytes cut
        // short by the client's close are a parse error too).
        guard !refused else { return }
        refused = true
        // Hummingbird closes the connection after the response that said so.
        guard !closing, context.channel.isActive else { return }
        let e = APIError.httpParse(parse)
        logger.debug(
            "refused bytes that are not a valid HTTP request",
            metadata: ["error": "\(parse)", "remote": "\(context.remoteAddress.map { "\($0)" } ?? "?")"])
        guard let body = try? e.body() else {
            context.close(promise: nil)
            return
        }
        var fields = HTTPFields()
        fields[.contentType] = "application/json; charset=utf-8"
        fields[.contentLength] = String(body.readableBytes)
        fields[.connection] = "close"
        context.write(wrapOutboundOut(.head(HTTPResponse(status: e.status, headerFields: fields))), promise: nil)
        context.write(wrapOutboundOut(.body(body)), promise: nil)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }
}
