/// Redis Cluster's key → slot rule (cluster spec, "Keys distribution model"): CRC16 (XMODEM:
/// polynomial 0x1021, initial 0, no reflection) of the key, modulo 16384. When the key holds a
/// `{…}` with at least one byte inside, only the bytes between the first `{` and the first `}`
/// after it are hashed, so `tollgate:{C}:limits` and `tollgate:{C}:day:…` share a slot and one
/// script may touch both.
public enum RedisHashSlot {
    public static let count = 16_384

    public static func of(_ key: String) -> Int {
        let bytes = Array(key.utf8)
        if let open = bytes.firstIndex(of: UInt8(ascii: "{")),
           let close = bytes[(open + 1)...].firstIndex(of: UInt8(ascii: "}")), close > open + 1 {
            return Int(crc16(bytes[(open + 1)..<close]) % UInt16(count))
        }
        return Int(crc16(bytes[...]) % UInt16(count))
    }

    public static func crc16(_ bytes: ArraySlice<UInt8>) -> UInt16 {
        var crc: UInt16 = 0
        for byte in bytes { crc = (crc << 8) ^ table[Int(UInt8(crc >> 8) ^ byte)] }
        return crc
    }

    private static let table: [UInt16] = (0..<256).map { i in
        var crc = UInt16(i) << 8
        for _ in 0..<8 { crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1 }
        return crc
    }
}
