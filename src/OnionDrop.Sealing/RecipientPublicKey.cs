using System.Security.Cryptography;
using Sodium;

namespace OnionDrop.Sealing;

/// <summary>
/// A journalist's X25519 public key, as the daemon's config holds it. Text form: "odpk1" + base32(key ||
/// checksum), the checksum being the first 4 bytes of BLAKE2b("odpk1" || key), so a mistyped key is refused
/// instead of silently sealing to nobody (docs/sealed-format.md, "Keys").
/// </summary>
public sealed class RecipientPublicKey : IEquatable<RecipientPublicKey>
{
    public const int Length = 32;
    public const string Prefix = "odpk1";
    private const int ChecksumLength = 4;

    private readonly byte[] _key;
    private readonly byte[] _keyId;

    public RecipientPublicKey(ReadOnlySpan<byte> key)
    {
        if (key.Length != Length) throw new ArgumentException($"a public key is {Length} bytes, not {key.Length}", nameof(key));
        _key = key.ToArray();
        _keyId = ComputeKeyId(_key);
    }

    public ReadOnlyMemory<byte> Bytes => _key;

    /// <summary>Short id written in the sealed header so a key finds its stanza without trial decryption.</summary>
    public ReadOnlyMemory<byte> KeyId => _keyId;

    /// <summary>Parses the text form; throws <see cref="FormatException"/> with a one-line reason.</summary>
    public static RecipientPublicKey Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var t = text.Trim();
        if (t.StartsWith(JournalistKey.Prefix, StringComparison.OrdinalIgnoreCase))
            throw new FormatException("this is a SECRET key (odsk1...): it must never be on the server; give the public key (odpk1...) that keygen printed");
        if (!t.StartsWith(Prefix, StringComparison.OrdinalIgnoreCase))
            throw new FormatException($"not an OnionDrop public key (it must start with \"{Prefix}\")");
        var body = t[Prefix.Length..];
        var expectedChars = ((Length + ChecksumLength) * 8 + 4) / 5;
        if (body.Contains(',') || body.Contains(' '))
            throw new FormatException("several keys in one: give one key per --recipient (a list with commas or spaces goes in ONIONDROP_RECIPIENTS)");
        if (body.Length != expectedChars)
            throw new FormatException($"public key has {t.Length} characters, expected {Prefix.Length + expectedChars}: truncated or mistyped");
        if (!Base32.TryDecode(body, out var data, out var bad))
            throw new FormatException($"public key has an invalid character '{body[bad]}' at position {Prefix.Length + bad + 1}");
        var key = data.AsSpan(0, Length);
        if (!CryptographicOperations.FixedTimeEquals(data.AsSpan(Length, ChecksumLength), Checksum(key)))
            throw new FormatException("public key checksum does not match: mistyped key?");
        return new RecipientPublicKey(key);
    }

    public static bool TryParse(string text, out RecipientPublicKey? key, out string? error)
    {
        try { key = Parse(text); error = null; return true; }
        catch (FormatException e) { key = null; error = e.Message; return false; }
    }

    public override string ToString()
    {
        Span<byte> data = stackalloc byte[Length + ChecksumLength];
        _key.CopyTo(data);
        Checksum(_key).CopyTo(data[Length..]);
        return Prefix + Base32.Encode(data);
    }

    public bool Equals(RecipientPublicKey? other) => other is not null && _key.AsSpan().SequenceEqual(other._key);
    public override bool Equals(object? obj) => Equals(obj as RecipientPublicKey);
    public override int GetHashCode() => BitConverter.ToInt32(_keyId);

    private static byte[] Checksum(ReadOnlySpan<byte> key) =>
        GenericHash.Hash([.. "odpk1"u8, .. key], (byte[]?)null, 16)[..ChecksumLength];

    private static byte[] ComputeKeyId(ReadOnlySpan<byte> key) =>
        GenericHash.Hash([.. "oniondrop key id v1"u8, .. key], (byte[]?)null, 16)[..SealedFormat.KeyIdLength];
}
