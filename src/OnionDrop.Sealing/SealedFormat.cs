using System.Text;

namespace OnionDrop.Sealing;

/// <summary>The constants of docs/sealed-format.md, in the order the spec introduces them.</summary>
internal static class SealedFormat
{
    /// <summary>First bytes of every sealed blob: "ODSEAL", then the version byte, then a zero byte.</summary>
    public static ReadOnlySpan<byte> Magic => "ODSEAL"u8;
    public const byte Version = 1;
    public const int PreambleLength = 8;          // magic(6) version(1) reserved(1)
    public const int RecipientCountLength = 2;    // u16 little-endian
    public const int MaxRecipients = 64;

    public const int KeyIdLength = 8;
    public const int SealedKeyLength = 32 + 48;   // crypto_box_seal of a 32-byte key: ephemeral pk + MAC
    public const int StanzaLength = KeyIdLength + SealedKeyLength;

    /// <summary>Plaintext bytes per secretstream chunk; the final chunk holds 1..ChunkSize bytes.</summary>
    public const int ChunkSize = 64 * 1024;
    public const int CipherChunkSize = ChunkSize + Interop.SecretStream.ABytes;

    public static int HeaderLength(int recipients) =>
        PreambleLength + RecipientCountLength + recipients * StanzaLength + Interop.SecretStream.HeaderBytes;

    // Plaintext records inside the stream (little-endian lengths).
    public const byte RecordFileStart = 0x01;     // u32 nameLen, name, u32 typeLen, type (UTF-8)
    public const byte RecordFileData = 0x02;      // u32 len (>= 1), bytes
    public const byte RecordFileEnd = 0x03;       // u64 size, 32-byte SHA-256
    public const byte RecordManifest = 0x04;      // u32 len, UTF-8 JSON; the last record, ends the stream

    public const int MaxNameBytes = 64 * 1024;
    public const int MaxContentTypeBytes = 4 * 1024;
    public const int MaxMessageChars = 8 * 1024 * 1024;
    public const int MaxManifestBytes = 64 * 1024 * 1024;
    /// <summary>The most files an OnionDrop server seals into one submission (its MaxFiles setting is at most this).</summary>
    public const int MaxFiles = 10_000;

    /// <summary>The sealer's: lone surrogates (which no HTTP form can carry) become U+FFFD. The opener checks what it reads with Unicode.Utf8.IsValid.</summary>
    public static readonly Encoding Utf8 = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: false);
}
