using System.Security.Cryptography;

namespace OnionDrop.Storage;

/// <summary>
/// Submission ids: 100 random bits in Crockford base32, five groups of four ("7KQ2-M9XD-4HAT-Q0VN-5RWE").
/// The same string is the source's receipt, the blob's file name and the pull protocol's id, so it is
/// readable aloud, carries nothing but randomness, and is validated strictly before it touches a path.
/// </summary>
public static class SubmissionId
{
    private const string Alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"; // Crockford: no I, L, O, U
    public const int Symbols = 20;
    public const int Length = Symbols + 4; // with the dashes

    public static string New()
    {
        Span<byte> random = stackalloc byte[Symbols];
        RandomNumberGenerator.Fill(random);
        Span<char> text = stackalloc char[Length];
        for (int i = 0, o = 0; i < Symbols; i++)
        {
            if (i > 0 && i % 4 == 0) text[o++] = '-';
            text[o++] = Alphabet[random[i] & 31]; // 256 is a multiple of 32: no bias
        }
        return new string(text);
    }

    /// <summary>True only for the exact canonical form <see cref="New"/> produces.</summary>
    public static bool IsValid(string? id)
    {
        if (id is null || id.Length != Length) return false;
        for (var i = 0; i < Length; i++)
        {
            var c = id[i];
            if (i % 5 == 4) { if (c != '-') return false; }
            else if (!Alphabet.Contains(c)) return false;
        }
        return true;
    }

    /// <summary>
    /// Reads a reference as a person typed it: case, spaces, missing dashes, and the look-alikes
    /// I/L (1) and O (0) forgiven. Null if it cannot be a submission id.
    /// </summary>
    public static string? Normalize(string? typed)
    {
        if (typed is null) return null;
        Span<char> symbols = stackalloc char[Symbols];
        var n = 0;
        foreach (var raw in typed)
        {
            if (raw is '-' or ' ' or '\t') continue;
            var c = char.ToUpperInvariant(raw) switch { 'I' or 'L' => '1', 'O' => '0', var x => x };
            if (!Alphabet.Contains(c) || n == Symbols) return null;
            symbols[n++] = c;
        }
        if (n != Symbols) return null;
        return string.Join('-', symbols[0..4].ToString(), symbols[4..8].ToString(), symbols[8..12].ToString(),
            symbols[12..16].ToString(), symbols[16..20].ToString());
    }
}
