namespace OnionDrop.Sealing;

/// <summary>
/// A journalist's X25519 public key, as the daemon's config holds it. Text form: "odpk1" + payload with a
/// checksum, so a mistyped key is refused instead of silently sealing to nobody.
/// </summary>
public sealed class RecipientPublicKey
{
    public const int Length = 32;

    public RecipientPublicKey(ReadOnlySpan<byte> key) => throw new NotImplementedException();

    public ReadOnlyMemory<byte> Bytes => throw new NotImplementedException();

    /// <summary>Short id written in the sealed header so a key finds its stanza without trial decryption.</summary>
    public ReadOnlyMemory<byte> KeyId => throw new NotImplementedException();

    /// <summary>Parses the text form; throws <see cref="FormatException"/> with a one-line reason.</summary>
    public static RecipientPublicKey Parse(string text) => throw new NotImplementedException();

    public override string ToString() => throw new NotImplementedException();
}
