using OnionDrop.Testing;

namespace OnionDrop.Tor.Tests;

/// <summary>A v3 address names its service's ed25519 public key; a mistyped or damaged one names none.</summary>
public sealed class OnionAddressTests
{
    // tor's own test vector (src/test/hs_build_address.py): RFC 8032's first ed25519 public key, and its address.
    internal static readonly byte[] Rfc8032PublicKey = Convert.FromHexString("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
    internal const string Rfc8032Address = "25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid.onion";

    [TestCase(Rfc8032Address)]
    [TestCase("25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid")]
    [TestCase("25NJQAMCWEFLPVKL73J4SZAHHIHOC4XT3KTCGJNPAINGR5YHKENL5SID.ONION")]
    public void The_public_key_is_read_from_the_address(string address) =>
        Assert.That(OnionAddress.PublicKeyOf(address), Is.EqualTo(Rfc8032PublicKey));

    [TestCase("35njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid.onion")]   // the key mistyped
    [TestCase("25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl6sid.onion")]   // the checksum mistyped
    [TestCase("25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenj73qe.onion")]   // version 4, its checksum right
    [TestCase("25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5si.onion")]
    [TestCase("25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5si1.onion")]
    [TestCase("")]
    public void A_damaged_address_names_no_key(string address) => Assert.That(OnionAddress.PublicKeyOf(address), Is.Null);
}

/// <summary>
/// <see cref="OnionServiceKey.Check"/> on files made by hand (no tor needed): the public key it writes back beside a
/// secret key is the one the hostname's address names, and only if that address is sound.
/// </summary>
public sealed class OnionServiceKeyTests
{
    private static readonly byte[] PublicHeader = "== ed25519v1-public: type0 ==\0\0\0"u8.ToArray();

    private static string ServiceDir(TempDirectory dir, string hostname)
    {
        // A well-formed secret key (header, then 64 bytes); only the public key is compared with the address.
        File.WriteAllBytes(dir.Combine(OnionServiceKey.SecretKeyFile), [.. "== ed25519v1-secret: type0 ==\0\0\0"u8, .. new byte[64]]);
        File.SetUnixFileMode(dir.Combine(OnionServiceKey.SecretKeyFile), UnixFileMode.UserRead | UnixFileMode.UserWrite);
        File.WriteAllText(dir.Combine("hostname"), hostname + "\n");
        return dir.Path;
    }

    [Test]
    public void A_missing_public_key_is_written_from_the_address()
    {
        using var dir = new TempDirectory();
        OnionServiceKey.Check(ServiceDir(dir, OnionAddressTests.Rfc8032Address), new TestLogger<OnionServiceKeyTests>());
        Assert.That(File.ReadAllBytes(dir.Combine("hs_ed25519_public_key")), Is.EqualTo(PublicHeader.Concat(OnionAddressTests.Rfc8032PublicKey)));
    }

    [Test]
    public void A_damaged_address_writes_no_public_key()
    {
        // A key written from a damaged hostname would make tor refuse the right secret key ("does not match");
        // without one, tor derives it from the secret key and writes hostname anew, with the address sources know.
        using var dir = new TempDirectory();
        OnionServiceKey.Check(ServiceDir(dir, "35njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid.onion"), new TestLogger<OnionServiceKeyTests>());
        Assert.That(File.Exists(dir.Combine("hs_ed25519_public_key")), Is.False);
    }
}
