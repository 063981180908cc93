using Microsoft.Extensions.Logging;
using OnionDrop.Files;

namespace OnionDrop.Tor;

/// <summary>
/// The launched tor's onion service key, HiddenServiceDir/hs_ed25519_secret_key. tor makes a new key, and so a new
/// address, whenever it finds none it can use (a damaged key with no public key beside it included): right on the
/// first start, a silent loss of the address sources know on any later one. So the key is checked before tor starts.
/// </summary>
internal static class OnionServiceKey
{
    public const string SecretKeyFile = "hs_ed25519_secret_key";

    // tor's key file: a 32-byte header ("== ed25519v1-secret: type0 ==", NUL-padded), then the 64-byte expanded key.
    private static ReadOnlySpan<byte> Header => "== ed25519v1-secret: type0 ==\0\0\0"u8;
    private const int FileLength = 96;
    private const string PublicKeyFile = "hs_ed25519_public_key";
    // tor's public key file: "== ed25519v1-public: type0 ==", NUL-padded to 32 bytes, then the 32-byte key.
    private static ReadOnlySpan<byte> PublicHeader => "== ed25519v1-public: type0 ==\0\0\0"u8;

    /// <summary>
    /// tor writes the key, its public key and hostname by temp file and rename, and fsyncs none of them nor their
    /// directory (seen with strace on Debian's tor): a power cut in the first seconds after a new service is made
    /// could lose them, and the address with them. Called once tor has written hostname (its last): the files, then the
    /// folders that name them, up to the data directory (on a first start all of them are new). A few fsyncs per start.
    /// </summary>
    public static void MakeDurable(TorrcValues values, ILogger logger)
    {
        try
        {
            foreach (var file in new[] { SecretKeyFile, PublicKeyFile }.Select(f => Path.Combine(values.OnionServiceDir, f)).Append(values.HostnameFile))
                if (File.Exists(file)) FileSync.Fsync(file);
            foreach (var dir in new[] { values.OnionServiceDir, values.TorDir, values.DataDir }) FileSync.Fsync(dir);
        }
        // Not a reason to keep the drop box down: tor serves from what it has read; the next start tries again.
        catch (IOException e) { logger.LogWarning("could not fsync the onion service's key files in {Dir}: {Error}", values.OnionServiceDir, e.Message); }
    }

    /// <summary>
    /// Throws when the directory names a service (tor's hostname file) whose key is missing or damaged; makes a key
    /// readable by others 0600 (a restore from a backup may have widened it).
    /// </summary>
    public static void Check(string onionServiceDir, ILogger logger)
    {
        var key = Path.Combine(onionServiceDir, SecretKeyFile);
        string? problem = null;
        if (File.Exists(key))
        {
            const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            if ((File.GetUnixFileMode(key) & ~Private) != 0)
            {
                logger.LogWarning("{KeyFile} was readable by others ({Mode}); set it to 0600", key, File.GetUnixFileMode(key));
                File.SetUnixFileMode(key, Private);
            }
            var bytes = File.ReadAllBytes(key);
            if (bytes.Length != FileLength || !bytes.AsSpan().StartsWith(Header))
                problem = $"is damaged (not tor's ed25519 secret key: {bytes.Length} bytes)";
        }
        var hostname = Path.Combine(onionServiceDir, TorrcValues.HostnameFileName);
        var address = File.Exists(hostname) ? File.ReadAllText(hostname).Trim() : null;
        if (problem is null && address is null) return;   // a new service: tor makes its key
        var consequence = "tor would make a new key and a new address";
        if (problem is null && File.Exists(key))
        {
            // A well-formed key may still not be this service's (a backup of another one, or damage past the header).
            // Given no public key, tor derives one from whatever secret key it finds and writes the hostname anew: a
            // new address, silently. So the public key is kept in step with the hostname: tor refuses a secret key
            // that does not match it ("... does not match ..."), and a public key of another service is refused here.
            if (OnionAddress.PublicKeyOf(address!) is not { } expected) return;   // not a sound v3 address: nothing to compare with
            var publicKey = Path.Combine(onionServiceDir, PublicKeyFile);
            if (!File.Exists(publicKey))
            {
                File.WriteAllBytes(publicKey, [.. PublicHeader, .. expected]);
                File.SetUnixFileMode(publicKey, UnixFileMode.UserRead | UnixFileMode.UserWrite);
                logger.LogWarning("{PublicKey} was missing; written again from {Address}, so that tor checks the secret key against it", publicKey, address);
                return;
            }
            var present = File.ReadAllBytes(publicKey);
            if (present.Length == PublicHeader.Length + 32 && present.AsSpan().StartsWith(PublicHeader) && present.AsSpan(PublicHeader.Length).SequenceEqual(expected))
                return;
            problem = $"may not be this service's (its {PublicKeyFile} is not the key of the address in hostname)";
            consequence = "tor would publish another address";
        }
        var known = address is null ? "sources who know its address" : $"sources who know {address}";
        throw new TorStartException(
            $"the onion service key {key} {problem ?? "is missing"}" + (address is null ? "" : $", but this service was {address}") +
            $": {consequence}, and {known} could no longer reach you. Put the key back from a " +
            $"backup; or, to start over with a new address on purpose, delete {onionServiceDir}",
            badConfiguration: true);   // only the operator can put it right: a restart every few seconds would not
    }
}
