#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import CCurl
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A C pointer handed from one thread to the next. Never used by two threads at once except
/// through the C functions documented as thread-safe (`ccurl_transfer_cancel`), and freed only
/// under `TransferBox`'s lock, so moving it across threads is sound.
struct CPointer: @unchecked Sendable {
    let raw: OpaquePointer
}

/// A libcurl easy handle (`CURL *`), owned by the pool or by the one thread using it.
struct EasyHandle: @unchecked Sendable {
    let raw: UnsafeMutableRawPointer
}

/// libcurl set up once per process.
enum CurlGlobal {
    static let initialized: Bool = ccurl_global_init() == 0
}

/// A few easy handles kept for reuse so that connections stay alive between calls.
final class EasyHandlePool: Sendable {
    private let idle = Mutex<[EasyHandle]>([])
    private let maxIdle: Int

    init(maxIdle: Int = 4) { self.maxIdle = maxIdle }

    func take() -> EasyHandle? {
        if let h = idle.withLock({ $0.popLast() }) { return h }
        return ccurl_easy_new().map { EasyHandle(raw: $0) }
    }

    func give(_ h: EasyHandle) {
        let keep = idle.withLock { list -> Bool in
            guard list.count < maxIdle else { return false }
            list.append(h)
            return true
        }
        if !keep { ccurl_easy_free(h.raw) }
    }

    deinit {
        for h in idle.withLock({ $0 }) { ccurl_easy_free(h.raw) }
    }
}

/// One running transfer: lets a cancellation handler stop it without racing its release.
final class TransferBox: Sendable {
    private let state: Mutex<CPointer?>

    init(_ t: CPointer) { state = Mutex(t) }

    func cancel() {
        state.withLock { t in
            if let t { ccurl_transfer_cancel(t.raw) }
        }
    }

    /// Frees the C transfer; later cancels do nothing.
    func release() {
        state.withLock { t in
            if let t { ccurl_transfer_free(t.raw) }
            t = nil
        }
    }
}

/// What one transfer produced.
enum TransferResult: Sendable {
    case response(HTTPResponse)
    /// curl code, libcurl's error text, the OS errno of a failed connect; `noReply`: timed out
    /// after the request was sent, before the whole reply came.
    case failure(code: Int32, message: String, osErrno: Int, noReply: Bool = false)
}

struct PreparedRequest: Sendable {
    var method: String
    var url: String
    var headerLines: [String]
    var body: Data?
    var connectTimeoutMs: Int
    var timeoutMs: Int
    var caFile: String?
    var userAgent: String
}


/// Performs one request on a pooled handle on a dedicated thread.
func performTransfer(_ request: PreparedRequest, pool: EasyHandlePool) async -> TransferResult {
    guard CurlGlobal.initialized else {
        return .failure(code: -1, message: "libcurl failed to initialize", osErrno: 0)
    }
    guard let rawTransfer = ccurl_transfer_new() else {
        return .failure(code: -1, message: "out of memory", osErrno: 0)
    }
    let transfer = CPointer(raw: rawTransfer)
    let box = TransferBox(transfer)
    defer { box.release() }
    return await withTaskCancellationHandler {
        await withCheckedContinuation { (continuation: CheckedContinuation<TransferResult, Never>) in
            let started = runOnDedicatedThread {
                continuation.resume(returning: blockingPerform(request, transfer: transfer, pool: pool))
            }
            if !started {
                continuation.resume(returning: .failure(code: -1, message: "cannot start a thread", osErrno: 0))
            }
        }
    } onCancel: {
        box.cancel()
    }
}

/// The blocking part; runs on a dedicated thread.
private func blockingPerform(_ r: PreparedRequest, transfer: CPointer, pool: EasyHandlePool) -> TransferResult {
    guard let handle = pool.take() else {
        return .failure(code: -1, message: "cannot create a libcurl handle", osErrno: 0)
    }
    let t = transfer.raw
    let code: Int32 = withCStringArray(r.headerLines) { headers, count in
        r.method.withCString { method in
            r.url.withCString { url in
                r.userAgent.withCString { ua in
                    withOptionalCString(r.caFile) { ca in
                        withBodyPointer(r.body) { bodyPtr, bodyLen in
                            var req = ccurl_request(
                                method: method, url: url, headers: headers, header_count: count,
                                body: bodyPtr, body_len: bodyLen, connect_timeout_ms: r.connectTimeoutMs,
                                timeout_ms: r.timeoutMs, ca_file: ca, user_agent: ua)
                            return ccurl_perform(handle.raw, t, &req)
                        }
                    }
                }
            }
        }
    }
    pool.give(handle)
    if code != 0 {
        let message = ccurl_transfer_error(t).map { String(cString: $0) } ?? "error \(code)"
        return .failure(
            code: code, message: message, osErrno: Int(ccurl_transfer_os_errno(t)),
            noReply: ccurl_transfer_no_reply(t) != 0)
    }
    var bodyLen = 0
    var body = Data()
    if let p = ccurl_transfer_body(t, &bodyLen), bodyLen > 0 {
        body = Data(bytes: p, count: bodyLen)
    }
    var headerLen = 0
    var headerText = ""
    if let p = ccurl_transfer_headers(t, &headerLen), headerLen > 0 {
        headerText = String(decoding: UnsafeRawBufferPointer(start: p, count: headerLen), as: UTF8.self)
    }
    return .response(
        HTTPResponse(status: Int(ccurl_transfer_status(t)), headers: parseHeaders(headerText), body: body))
}

/// Header lines of the final response (earlier 1xx blocks are dropped), names lowercased.
func parseHeaders(_ text: String) -> [String: String] {
    var out: [String: String] = [:]
    // "\r\n" is one Character in Swift, so split on newline characters, not on "\n".
    for line in text.split(omittingEmptySubsequences: true, whereSeparator: \.isNewline) {
        if line.hasPrefix("HTTP/") {
            out = [:]
            continue
        }
        guard let colon = line.firstIndex(of: ":") else { continue }
        let name = line[..<colon].trimmed.lowercased()
        let value = line[line.index(after: colon)...].trimmed
        if name.isEmpty { continue }
        if let existing = out[name] {
            out[name] = existing + ", " + value
        } else {
            out[name] = value
        }
    }
    return out
}

private func withOptionalCString<R>(_ s: String?, _ body: (UnsafePointer<CChar>?) -> R) -> R {
    guard let s else { return body(nil) }
    return s.withCString { body($0) }
}

private func withBodyPointer<R>(_ data: Data?, _ body: (UnsafeRawPointer?, Int) -> R) -> R {
    guard let data, !data.isEmpty else { return body(nil, 0) }
    return data.withUnsafeBytes { buf in body(buf.baseAddress, buf.count) }
}

private func withCStringArray<R>(
    _ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>?, Int) -> R
) -> R {
    var owned: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    defer { for p in owned { free(p) } }
    return owned.withUnsafeMutableBufferPointer { buf in
        guard let base = buf.baseAddress else { return body(nil, 0) }
        return base.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: buf.count) {
            body($0, buf.count)
        }
    }
}
