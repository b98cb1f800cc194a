/// Text that came from outside (file and member names, input fields, request
/// lines) on its way into a log line, an error message or a protocol answer:
/// control bytes and backslashes escaped (`\n`, `\x1b`), invalid UTF-8 shown as
/// `\xNN`, and anything past `limit` bytes cut with a note of how much was cut.
/// The result is always one line of printable text.
public enum SafeText {
    public static func field(_ text: some StringProtocol, limit: Int = 256) -> String {
        bytes(Array(text.utf8), limit: limit)
    }

    public static func bytes(_ raw: some Collection<UInt8>, limit: Int = 256) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(min(raw.count, limit) + 16)
        var taken = 0
        let hex = Array("0123456789abcdef".utf8)
        let array = Array(raw)
        var i = 0
        while i < array.count && taken < limit {
            let b = array[i]
            // A valid multi-byte UTF-8 sequence passes whole.
            let width = utf8Width(array, at: i)
            if width > 1 {
                out.append(contentsOf: array[i..<i + width])
                i += width
                taken += width
                continue
            }
            switch b {
            case 0x0A: out += Array("\\n".utf8)
            case 0x0D: out += Array("\\r".utf8)
            case 0x09: out += Array("\\t".utf8)
            case 0x5C: out += Array("\\\\".utf8)
            case 0x20..<0x7F: out.append(b)
            default: out += [0x5C, 0x78, hex[Int(b >> 4)], hex[Int(b & 15)]]  // \xNN
            }
            i += 1
            taken += 1
        }
        var text = String(decoding: out, as: UTF8.self)
        if i < array.count { text += "…(\(array.count - i) more bytes cut)" }
        return text
    }

    /// True when `text` holds no control byte (C0, DEL) at all.
    public static func isClean(_ text: some StringProtocol) -> Bool {
        text.utf8.allSatisfy { $0 >= 0x20 && $0 != 0x7F }
    }

    /// The length of the valid UTF-8 sequence of two or more bytes at `i`, or 1.
    public static func utf8Width<Bytes: RandomAccessCollection<UInt8>>(_ a: Bytes, at i: Int) -> Int where Bytes.Index == Int {
        let b = a[i]
        let width: Int
        switch b {
        case 0xC2...0xDF: width = 2
        case 0xE0...0xEF: width = 3
        case 0xF0...0xF4: width = 4
        default: return 1
        }
        guard i + width <= a.count else { return 1 }
        for j in 1..<width where a[i + j] & 0xC0 != 0x80 { return 1 }
        // Overlong and surrogate forms are not valid: let String's check decide.
        guard String(validating: a[i..<i + width], as: UTF8.self) != nil else { return 1 }
        // C1 controls (U+0080-U+009F) are escaped too.
        if b == 0xC2 && a[i + 1] < 0xA0 { return 1 }
        return width
    }
}
