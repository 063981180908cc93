using System.Security.Cryptography;
using System.Text;
using OnionDrop.Files;
using Sodium;

namespace OnionDrop.Sealing;

/// <summary>
/// A journalist's key pair. Lives only on the journalist's machine, never on the server.
/// Secret key file (docs/sealed-format.md, "Keys"): '#' comment lines, then one line of space-separated fields:
/// <code>
/// odsk1 plain    PUBKEY SECRET_B64
/// odsk1 argon2id PUBKEY OPSLIMIT MEMLIMIT SALT_B64 NONCE_B64 SECRETBOX_B64
/// </code>
/// The public key is repeated so the file can be checked (and the key recognised) without the passphrase.
/// </summary>
public sealed class JournalistKey : IDisposable
{
    public const string Prefix = "odsk1";
    /// <summary>Argon2id cost for new protected files: libsodium's "moderate" (3 passes, 256 MiB), about a second.</summary>
    public const long DefaultOpsLimit = 3;
    public const int DefaultMemLimit = 256 * 1024 * 1024;
    // Refuse absurd costs from a file before running them.
    private const long MaxOpsLimit = 64;
    private const long MaxMemLimit = 2L * 1024 * 1024 * 1024 - 1;

    private readonly byte[] _secret;
    private readonly RecipientPublicKey _public;
    private bool _disposed;

    private JournalistKey(byte[] secret)
    {
        _secret = secret;
        _public = new RecipientPublicKey(ScalarMult.Base(secret));
    }

    public static JournalistKey Generate()
    {
        using var pair = PublicKeyBox.GenerateKeyPair();
        return new JournalistKey((byte[])pair.PrivateKey.Clone());
    }

    /// <summary>Builds a key from its 32 secret bytes (for tools and test vectors).</summary>
    public static JournalistKey FromSecretBytes(ReadOnlySpan<byte> secret)
    {
        if (secret.Length != 32) throw new ArgumentException("a secret key is 32 bytes", nameof(secret));
        return new JournalistKey(secret.ToArray());
    }

    public RecipientPublicKey PublicKey => _public;

    internal ReadOnlySpan<byte> SecretBytes
    {
        get { ObjectDisposedException.ThrowIf(_disposed, this); return _secret; }
    }

    /// <summary>Writes the secret key file (mode 0600, created exclusively), optionally passphrase-protected (Argon2id).</summary>
    public void Save(string path, string? passphrase = null) =>
        Save(path, passphrase, DefaultOpsLimit, DefaultMemLimit);

    /// <summary>As <see cref="Save(string,string?)"/> with explicit Argon2id costs.</summary>
    public void Save(string path, string? passphrase, long opsLimit, int memLimit)
    {
        var text = new StringBuilder()
            .Append("# OnionDrop journalist secret key. Keep it offline, never on the server.\n")
            .Append("# Public key (give this one to the server): ").Append(_public).Append('\n')
            .Append(passphrase is null ? PlainLine() : ProtectedLine(passphrase, opsLimit, memLimit)).Append('\n')
            .ToString();
        var options = new FileStreamOptions
        {
            Mode = FileMode.CreateNew,   // never overwrite a key
            Access = FileAccess.Write,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
            BufferSize = 0,   // written at once: no buffer left to flush (and fail again) when a full disk refuses it
        };
        using (var file = new FileStream(path, options))
        {
            try
            {
                file.Write(Encoding.ASCII.GetBytes(text));
                file.Flush(flushToDisk: true);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Ours (CreateNew), and no key: an empty or cut-off file would be refused as existing by the next keygen.
                try { file.SetLength(0); } catch (IOException) { }   // nothing of the secret stays, should the delete fail
                File.Delete(path);
                throw new IOException($"{path} could not be written, and is not kept: {e.Message}", e);
            }
        }
        // The name too: keygen prints the public key next, and a key handed out whose file a crash then took
        // would leave every submission sealed to it unopenable.
        FileSync.Fsync(Path.GetDirectoryName(Path.GetFullPath(path))!);
    }

    private string PlainLine() => $"{Prefix} plain {_public} {Convert.ToBase64String(_secret)}";

    private string ProtectedLine(string passphrase, long opsLimit, int memLimit)
    {
        var salt = SodiumCore.GetRandomBytes(16);
        var nonce = SecretBox.GenerateNonce();
        var boxKey = DeriveKey(passphrase, salt, opsLimit, memLimit);
        try
        {
            var box = SecretBox.Create(_secret, nonce, boxKey);
            return $"{Prefix} argon2id {_public} {opsLimit} {memLimit} {Convert.ToBase64String(salt)} {Convert.ToBase64String(nonce)} {Convert.ToBase64String(box)}";
        }
        finally { CryptographicOperations.ZeroMemory(boxKey); }
    }

    /// <summary>Whether the key file is passphrase-protected, read without the passphrase. (<see cref="Load"/> asks for one only then: callers need not check first.)</summary>
    public static bool IsProtected(string path) => ReadKeyLine(path)[1] == "argon2id";

    /// <summary>Loads a key file; asks <paramref name="passphrase"/> only if the file is protected.</summary>
    /// <exception cref="FormatException">the file is not a valid key file, or the passphrase is wrong (one-line reason)</exception>
    public static JournalistKey Load(string path, Func<string>? passphrase = null)
    {
        var f = ReadKeyLine(path);
        // keygen wrote this field: a bad checksum here is damage to the file, not the typo Parse suspects.
        if (!RecipientPublicKey.TryParse(f[2], out var expectedPublic, out _))
            throw new FormatException("key file is damaged: its public key field is not a valid odpk1 key");
        byte[] secret;
        switch (f[1])
        {
            case "plain" when f.Length == 4:
                secret = FromBase64(f[3], 32, "secret key");
                break;
            case "argon2id" when f.Length == 8:
                if (!long.TryParse(f[3], out var ops) || ops < 3 || ops > MaxOpsLimit
                    || !long.TryParse(f[4], out var mem) || mem < 8192 || mem > MaxMemLimit)
                    throw new FormatException("key file has invalid Argon2id parameters");
                var salt = FromBase64(f[5], 16, "salt");
                var nonce = FromBase64(f[6], 24, "nonce");
                var box = FromBase64(f[7], 32 + 16, "protected secret key");
                if (passphrase is null) throw new FormatException("key file is passphrase-protected and no passphrase was given");
                var boxKey = DeriveKey(passphrase(), salt, ops, (int)mem);
                try { secret = SecretBox.Open(box, nonce, boxKey); }
                catch (CryptographicException) { throw new FormatException("wrong passphrase for the key file"); }
                finally { CryptographicOperations.ZeroMemory(boxKey); }
                break;
            default:
                throw new FormatException($"key file has an unknown or malformed \"{Prefix} {f[1]}\" line");
        }
        var key = new JournalistKey(secret);
        if (!key.PublicKey.Equals(expectedPublic!))
        {
            key.Dispose();
            throw new FormatException("key file is corrupt: its secret key does not match its public key");
        }
        return key;
    }

    /// <summary>A key file is a few hundred bytes; more is something else given by mistake (a 1 GB .sealed was read whole).</summary>
    private const int MaxKeyFileBytes = 16 * 1024;

    private static string[] ReadKeyLine(string path)
    {
        if (Directory.Exists(path)) throw new FormatException("is a directory, not a key file");
        var bytes = new byte[MaxKeyFileBytes + 1];
        int length;
        try
        {
            using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0);
            length = file.ReadAtLeast(bytes, bytes.Length, throwOnEndOfStream: false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new FormatException($"cannot read key file: {e.Message}", e); }
        if (length > MaxKeyFileBytes) throw new FormatException($"not an OnionDrop secret key file (over {MaxKeyFileBytes / 1024} KiB; a key file is a few hundred bytes)");
        var lines = Encoding.UTF8.GetString(bytes, 0, length).Split('\n');
        var line = lines.Select(l => l.Trim()).FirstOrDefault(l => l.Length > 0 && !l.StartsWith('#'));
        var fields = line?.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (fields is null || fields.Length < 3 || fields[0] != Prefix)
            throw new FormatException(line is not null && line.StartsWith(RecipientPublicKey.Prefix, StringComparison.OrdinalIgnoreCase)
                ? "that is a public key; opening needs the secret key file"
                : $"not an OnionDrop secret key file (no \"{Prefix}\" line)");
        return fields;
    }

    private static byte[] FromBase64(string s, int length, string what)
    {
        byte[] b;
        try { b = Convert.FromBase64String(s); }
        catch (FormatException) { throw new FormatException($"key file has a malformed {what}"); }
        if (b.Length != length) throw new FormatException($"key file has a malformed {what}");
        return b;
    }

    /// <summary>Argon2id over the passphrase's NFC UTF-8 bytes, so the same words typed on any system give the same key.</summary>
    private static byte[] DeriveKey(string passphrase, byte[] salt, long opsLimit, int memLimit)
    {
        if (passphrase.Length == 0) throw new FormatException("the passphrase is empty");
        var bytes = Encoding.UTF8.GetBytes(passphrase.Normalize(NormalizationForm.FormC));
        try { return PasswordHash.ArgonHashBinary(bytes, salt, opsLimit, memLimit, 32, PasswordHash.ArgonAlgorithm.Argon_2ID13); }
        finally { CryptographicOperations.ZeroMemory(bytes); }
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        CryptographicOperations.ZeroMemory(_secret);
    }
}
