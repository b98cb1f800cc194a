import GeoGateCore
#if canImport(Glibc)
import Glibc
#endif

/// Walks the lines of a text buffer without copying: each line as a byte slice
/// (no '\n', no trailing '\r') with its 1-based number. The importers' parsing
/// fast paths run on these slices.
struct TextLines {
    let base: UnsafePointer<UInt8>
    let count: Int

    /// A UTF-8 byte order mark at the start (spreadsheet exports) is skipped.
    init(_ buffer: UnsafeBufferPointer<UInt8>) {
        var base = buffer.baseAddress ?? UnsafePointer(bitPattern: 1)!
        var count = buffer.count
        if count >= 3 && base[0] == 0xEF && base[1] == 0xBB && base[2] == 0xBF {
            base += 3
            count -= 3
        }
        self.base = base
        self.count = count
    }

    @inline(__always)
    func forEach(_ body: (_ line: UnsafeBufferPointer<UInt8>, _ number: Int) throws(ImportError) -> Void) throws(ImportError) {
        var offset = 0
        var number = 0
        while offset < count {
            number += 1
            let rest = count - offset
            let newline = memchr(base + offset, 0x0A, rest)
            var end = newline.map { UnsafePointer<UInt8>($0.assumingMemoryBound(to: UInt8.self)) - base } ?? count
            let next = end + 1
            if end > offset && base[end - 1] == 0x0D { end -= 1 }
            try body(UnsafeBufferPointer(start: base + offset, count: end - offset), number)
            offset = next
        }
    }
}

/// Splits one line on a separator into at most 8 fields, without copying.
struct Fields {
    static let capacity = 8
    var starts = InlineArray<8, Int>(repeating: 0)
    var ends = InlineArray<8, Int>(repeating: 0)
    /// The number of fields; `capacity + 1` means "more than we keep".
    var count = 0
    let line: UnsafeBufferPointer<UInt8>

    /// Splits `line`; a field may be wrapped in double quotes (DB-IP, MaxMind CSV),
    /// which are stripped, and a quoted field may hold the separator. Blanks
    /// around a field are trimmed.
    @inline(__always)
    init(_ line: UnsafeBufferPointer<UInt8>, separator: UInt8) {
        self.line = line
        let n = line.count
        var i = 0
        while true {
            if count == Fields.capacity { count += 1; return }
            var start = i
            var end: Int
            if i < n && line[i] == 0x22 {
                start = i + 1
                var j = start
                while j < n && line[j] != 0x22 { j += 1 }
                end = j
                i = min(j + 1, n)
                while i < n && line[i] != separator { i += 1 }
            } else {
                while i < n && line[i] != separator { i += 1 }
                end = i
            }
            while start < end && line[start] == 0x20 { start += 1 }
            while end > start && line[end - 1] == 0x20 { end -= 1 }
            starts[count] = start
            ends[count] = end
            count += 1
            if i >= n { return }
            i += 1  // past the separator; a trailing one leaves a last, empty field
        }
    }

    @inline(__always)
    subscript(index: Int) -> UnsafeBufferPointer<UInt8> {
        UnsafeBufferPointer(rebasing: line[starts[index]..<ends[index]])
    }

    func string(_ index: Int) -> String { String(decoding: self[index], as: UTF8.self) }
}

extension UnsafeBufferPointer where Element == UInt8 {
    /// The line with leading and trailing blanks removed.
    var trimmed: UnsafeBufferPointer<UInt8> {
        var s = 0, e = count
        while s < e && (self[s] == 0x20 || self[s] == 0x09) { s += 1 }
        while e > s && (self[e - 1] == 0x20 || self[e - 1] == 0x09) { e -= 1 }
        return UnsafeBufferPointer(rebasing: self[s..<e])
    }

    var isBlankOrComment: Bool {
        let t = trimmed
        return t.isEmpty || t[0] == UInt8(ascii: "#")
    }

    /// Parses an unsigned decimal integer (no sign, no blanks).
    var decimalValue: UInt64? {
        if isEmpty || count > 20 { return nil }
        var v: UInt64 = 0
        for b in self {
            guard b >= 0x30 && b <= 0x39 else { return nil }
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(UInt64(b - 0x30))
            if o1 || o2 { return nil }
            v = a
        }
        return v
    }

    /// The field as error messages show it: control bytes escaped, cut past 120 bytes.
    var text: String { SafeText.bytes(self, limit: 120) }
}
