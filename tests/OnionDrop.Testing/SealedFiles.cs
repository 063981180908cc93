using System.Security.Cryptography;

namespace OnionDrop.Testing;

/// <summary>What a fetch left in a folder, as the tests compare it with what the server listed.</summary>
public static class SealedFiles
{
    public static string Sha256Of(string path) => Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(path)));

    /// <summary>Each ID.sealed in <paramref name="dir"/>: its id and the SHA-256 of its bytes.</summary>
    public static Dictionary<string, string> HashesIn(string dir) =>
        Directory.GetFiles(dir, "*.sealed").ToDictionary(p => Path.GetFileNameWithoutExtension(p), Sha256Of);
}
