#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A failed read or write of a kernel file, naming the file and the errno.
public struct KSMKernelError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Operation: Sendable, Equatable {
        case read
        case write(String)
        case list
    }

    /// The file or directory concerned.
    public var path: String
    public var operation: Operation
    /// The errno, or 0 when the failure is not a system call's (e.g. unparsable content).
    public var errno: Int32
    /// Extra words (e.g. the unparsable content).
    public var detail: String?

    public init(path: String, operation: Operation, errno: Int32, detail: String? = nil) {
        self.path = path
        self.operation = operation
        self.errno = errno
        self.detail = detail
    }

    /// The symbolic errno name (EBUSY, EINVAL, …), or nil for a parse failure.
    public var errnoName: String? { errno == 0 ? nil : Errno.name(errno) }

    public var isBusy: Bool { errno == EBUSY }
    public var isInvalid: Bool { errno == EINVAL }
    public var isNotFound: Bool { errno == ENOENT }
    public var isPermissionDenied: Bool { errno == EACCES || errno == EPERM }

    public var description: String {
        let what: String
        switch operation {
        case .read: what = "read \(path)"
        case .write(let value): what = "write \(value) to \(path)"
        case .list: what = "list \(path)"
        }
        var text = what + ": "
        if errno != 0 {
            text += "\(Errno.name(errno)) (\(Errno.message(errno)))"
            if let detail { text += ": \(detail)" }
        } else {
            text += detail ?? "failed"
        }
        return text
    }
}

/// errno names and messages without Foundation.
public enum Errno {
    public static func name(_ code: Int32) -> String {
        switch code {
        case EPERM: return "EPERM"
        case ENOENT: return "ENOENT"
        case EINTR: return "EINTR"
        case EIO: return "EIO"
        case EACCES: return "EACCES"
        case EBUSY: return "EBUSY"
        case EEXIST: return "EEXIST"
        case ENOTDIR: return "ENOTDIR"
        case EISDIR: return "EISDIR"
        case EINVAL: return "EINVAL"
        case ENOSPC: return "ENOSPC"
        case EROFS: return "EROFS"
        case ERANGE: return "ERANGE"
        case ENOMEM: return "ENOMEM"
        case EAGAIN: return "EAGAIN"
        case ESRCH: return "ESRCH"
        case ENODEV: return "ENODEV"
        default: return "errno \(code)"
        }
    }

    public static func message(_ code: Int32) -> String {
        guard let cString = strerror(code) else { return "error \(code)" }
        return String(cString: cString)
    }
}
