import GeoGateCore
import GeoGateTrie
#if canImport(Glibc)
import Glibc
#endif

/// The trie `lookup` answers from (opened once).
let fuzzLookupTrie: TrieFile = try! TrieFile(bytes: fuzzTrieBytes, name: "fuzz.trie")

/// `geogate lookup` on standard input: the real `LookupStream` reads the input from
/// a file and answers into another, its errors into a third. Byte 0 picks the
/// layout: bits 0-2 the field (0: the whole line), bit 3 a delimiter (bits 4-5: ','
/// '/' ':' or tab) instead of blanks, bit 6 JSON. Every answer must be one line of
/// its layout's shape, ending in a country or "--" (JSON: one object, no control
/// byte); every error one bounded printable line naming its line; and no more
/// answers and errors than the input has lines.
let lookupTarget = FuzzTarget("lookup", "geogate lookup's stream: fields, delimiters, JSON, bad and long lines") { input throws(FuzzFailure) in
    guard let mode = input.first else { return }
    let field = Int(mode & 0x07)
    let delimiters: [UInt8] = [0x2C, 0x2F, 0x3A, 0x09]
    var layout = LookupLayout(json: mode & 0x40 != 0)
    if field > 0 {
        layout.field = mode & 0x08 != 0 ? .delimited(field, delimiter: delimiters[Int(mode >> 4 & 3)]) : .blankSeparated(field)
    }
    let body = UnsafeRawBufferPointer(rebasing: input[1...])
    let inPath = scratchFile("lookup-in"), outPath = scratchFile("lookup-out"), errPath = scratchFile("lookup-err")
    write(Array(body), to: inPath)
    let inFD = open(inPath, O_RDONLY | O_CLOEXEC)
    let outFD = open(outPath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    let errFD = open(errPath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    defer { close(inFD); close(outFD); close(errFD) }
    guard inFD >= 0 && outFD >= 0 && errFD >= 0 else { throw FuzzFailure("cannot open the scratch files") }
    var stream = LookupStream(view: fuzzLookupTrie.view, layout: layout, sourceName: "stdin", output: outFD, errors: errFD)
    do { try stream.run(fd: inFD) } catch { throw FuzzFailure("the stream failed on a file: \(error)") }

    let answers = contents(outFD), errors = contents(errFD)
    let inputLines = body.reduce(1) { $0 + ($1 == 0x0A ? 1 : 0) }
    for (what, bytes) in [("answers", answers), ("errors", errors)] where !bytes.isEmpty && bytes.last != 0x0A {
        throw FuzzFailure("the \(what) do not end with a newline")
    }
    let answerLines = answers.split(separator: 0x0A, omittingEmptySubsequences: false).dropLast()
    let errorLines = errors.split(separator: 0x0A, omittingEmptySubsequences: false).dropLast()
    guard answerLines.count + errorLines.count <= inputLines else {
        throw FuzzFailure("\(answerLines.count) answers and \(errorLines.count) errors for \(inputLines) lines")
    }
    guard errorLines.count == stream.badLines else {
        throw FuzzFailure("\(errorLines.count) error lines for \(stream.badLines) bad lines")
    }
    for line in errorLines {
        let text = String(decoding: line, as: UTF8.self)
        try expectShownSafely(text, limit: 1024, "an error")
        guard text.hasPrefix("geogate: stdin:") else { throw FuzzFailure("an error without its line: \(SafeText.field(text))") }
    }
    for line in answerLines {
        let text = Array(line)
        if layout.json {
            guard text.first == UInt8(ascii: "{"), text.last == UInt8(ascii: "}"), !text.contains(where: { $0 < 0x20 }),
                  String(validating: text, as: UTF8.self) != nil else {
                throw FuzzFailure("not one JSON object on one line of UTF-8: \(SafeText.bytes(text))")
            }
            continue
        }
        // "... CC" or "... --" after the separator; the whole line is printable when
        // only the address is printed.
        let separator: UInt8
        if case .delimited(_, let d) = layout.field { separator = d } else { separator = 0x20 }
        let tail = text.suffix(3)
        let country = tail.dropFirst()
        guard tail.count == 3, tail.first == separator,
              country.allSatisfy({ $0 >= 0x41 && $0 <= 0x5A }) || Array(country) == [0x2D, 0x2D] else {
            throw FuzzFailure("an answer without its country: \(SafeText.bytes(text))")
        }
        if case .wholeLine = layout.field, text.contains(where: { $0 < 0x20 || $0 >= 0x7F }) {
            throw FuzzFailure("an address answer with a byte outside printable ASCII: \(SafeText.bytes(text))")
        }
    }
}

/// Everything written to `fd` so far.
private func contents(_ fd: Int32) -> [UInt8] {
    let size = Int(lseek(fd, 0, SEEK_END))
    guard size > 0 else { return [] }
    var bytes = [UInt8](repeating: 0, count: size)
    let n = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, size, 0) }
    return n == size ? bytes : []
}
