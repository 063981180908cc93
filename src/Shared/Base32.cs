namespace OnionDrop;

/// <summary>
/// RFC 4648 base32, lower case, no padding: case-insensitive and free of look-alike punctuation for keys people copy.
/// Compiled into both assemblies that need it, journalist keys (OnionDrop.Sealing) and onion addresses (OnionDrop.Tor),
/// so that neither has to reference the other.
/// </summary>
internal static class Base32
{
    private const string Alphabet = "abcdefghijklmnopqrstuvwxyz234567";

    public static string Encode(ReadOnlySpan<byte> data)
    {
        var chars = new char[(data.Length * 8 + 4) / 5];
        int buffer = 0, bits = 0, o = 0;
        foreach (var b in data)
        {
            buffer = (buffer << 8) | b;
            bits += 8;
            while (bits >= 5) { chars[o++] = Alphabet[(buffer >> (bits - 5)) & 31]; bits -= 5; }
        }
        if (bits > 0) chars[o++] = Alphabet[(buffer << (5 - bits)) & 31];
        return new string(chars, 0, o);
    }

    /// <summary>Decodes; on a bad character returns false with its index in <paramref name="badIndex"/>.</summary>
    public static bool TryDecode(string text, out byte[] data, out int badIndex)
    {
        data = new byte[text.Length * 5 / 8];
        int buffer = 0, bits = 0, o = 0;
        for (var i = 0; i < text.Length; i++)
        {
            var v = Alphabet.IndexOf(char.ToLowerInvariant(text[i]));
            if (v < 0) { badIndex = i; return false; }
            buffer = (buffer << 5) | v;
            bits += 5;
            if (bits >= 8) { data[o++] = (byte)(buffer >> (bits - 8)); bits -= 8; }
        }
        badIndex = -1;
        // Leftover bits must be zero padding, or the text is not a canonical encoding.
        if ((buffer & ((1 << bits) - 1)) != 0) { badIndex = text.Length - 1; return false; }
        return true;
    }
}
