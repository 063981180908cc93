using System.Security.Cryptography;

namespace OnionDrop.Tor;

/// <summary>
/// v3 onion addresses (rend-spec-v3 §6): base32(PUBKEY (32 bytes) | CHECKSUM (2) | VERSION (1, = 3)) + ".onion",
/// where CHECKSUM = SHA3-256(".onion checksum" | PUBKEY | VERSION)[:2], so a mistyped or damaged name is told apart.
/// </summary>
public static class OnionAddress
{
    private const string Suffix = ".onion";
    private const int NameLength = 56;
    private const byte Version = 3;

    /// <summary>
    /// The ed25519 public key <paramref name="address"/> (with or without ".onion", in either case) names; null if it is
    /// not a v3 address, its version or checksum included.
    /// </summary>
    public static byte[]? PublicKeyOf(string address)
    {
        var name = address.EndsWith(Suffix, StringComparison.OrdinalIgnoreCase) ? address[..^Suffix.Length] : address;
        if (name.Length != NameLength || !Base32.TryDecode(name, out var bytes, out _) || bytes[34] != Version) return null;
        var publicKey = bytes[..32];
        return bytes.AsSpan(32, 2).SequenceEqual(Checksum(publicKey)) ? publicKey : null;
    }

    private static ReadOnlySpan<byte> Checksum(ReadOnlySpan<byte> publicKey)
    {
        // Without SHA3 no address can be checked: say so, rather than take every well-formed name, or none, quietly.
        if (!SHA3_256.IsSupported)
            throw new PlatformNotSupportedException("SHA3-256 is not available (it needs OpenSSL 1.1.1 or later): onion addresses cannot be checked");
        return SHA3_256.HashData([.. ".onion checksum"u8, .. publicKey, Version]).AsSpan(0, 2);
    }
}
